"""The image writer: real FFCV round trips, conversions, boxes, skips, and one-line CLI errors.

Images are small crops of real photos from scikit-image. Success paths call the library (or
``main`` in-process, so FFCV is imported once); error paths run the CLI in a subprocess.
"""

import json
import os
import re
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from fastssl_common.errors import UserError
from writers.image_sources import crop_region, map_in_order, read_list_file, scan_folder
from writers.write_images import SMALL_BOX, ImageEncoder, main, write_images

SIZE = (96, 64)  # width, height: every image of the Loader tests has this size


def photo(name, size):
    """A real photo from scikit-image, shrunk to ``size`` (width, height)."""
    return np.asarray(Image.fromarray(getattr(skimage.data, name)()).resize(size, Image.BILINEAR))


def patch(name):
    """The centre SIZE patch of a real photo at half resolution (natural detail for JPEG)."""
    full = getattr(skimage.data, name)()
    half = np.asarray(
        Image.fromarray(full).resize((full.shape[1] // 2, full.shape[0] // 2), Image.BILINEAR)
    )
    top, left = (half.shape[0] - SIZE[1]) // 2, (half.shape[1] - SIZE[0]) // 2
    return np.ascontiguousarray(half[top : top + SIZE[1], left : left + SIZE[0]])


def save(array_or_image, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = (
        array_or_image
        if isinstance(array_or_image, Image.Image)
        else Image.fromarray(array_or_image)
    )
    image.save(path, **kwargs)
    return path


def rgba_photo():
    """coffee with a left-to-right alpha ramp, and what compositing it onto white gives."""
    rgb = patch('coffee').astype(np.float64)
    alpha = np.tile(np.linspace(0, 255, SIZE[0]).round(), (SIZE[1], 1))
    rgba = np.dstack([rgb, alpha]).astype(np.uint8)
    a = alpha[:, :, None] / 255.0
    on_white = np.rint(rgb * a + 255.0 * (1 - a)).astype(np.uint8)
    return rgba, on_white


def truncated_jpeg(path):
    """A real JPEG cut to half its bytes: Pillow fails with 'image file is truncated'."""
    save(photo('chelsea', (96, 64)), path, quality=95)
    with open(path, 'rb') as handle:
        data = handle.read()
    with open(path, 'wb') as handle:
        handle.write(data[: len(data) // 2])
    return path


def read_beton(path):
    """Every sample of a .beton as (RGB array, label), from FFCV's Reader (any image sizes)."""
    from ffcv.reader import Reader

    reader = Reader(path)
    sizes = dict(zip(reader.alloc_table['ptr'].tolist(), reader.alloc_table['size'].tolist()))
    data = np.fromfile(path, dtype=np.uint8)
    samples = []
    for image, label in zip(reader.metadata['f0'], reader.metadata['f1']):
        start = int(image['data_ptr'])
        stored = data[start : start + sizes[start]]
        height, width = int(image['height']), int(image['width'])
        if image['mode'] == 1:  # raw
            rgb = stored.reshape(height, width, 3)
        else:
            rgb = cv2.imdecode(stored, cv2.IMREAD_COLOR)[:, :, ::-1]
        samples.append((rgb, int(label)))
    return samples


def load_with_ffcv_loader(path, count):
    """Decode a same-size .beton with the real FFCV Loader: (images N x H x W x 3, labels N)."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    loader = Loader(
        path,
        batch_size=count,
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        drop_last=False,
        pipelines={'image': [SimpleRGBImageDecoder()], 'label': [IntDecoder()]},
    )
    ((images, labels),) = list(loader)
    return np.asarray(images), np.asarray(labels).reshape(-1)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope='module')
def class_folder(module_tmp):
    """ImageFolder layout with RGB, grayscale and RGBA images, all SIZE; and expected pixels."""
    root = module_tmp.mktemp('classes')
    rgba, rgba_on_white = rgba_photo()
    gray = patch('camera')
    expected = [  # in sorted path order: class folders sorted, then file names
        (save(patch('astronaut'), str(root / 'cat' / 'astronaut.png')), patch('astronaut'), 0),
        (save(patch('chelsea'), str(root / 'cat' / 'chelsea.bmp')), patch('chelsea'), 0),
        (save(gray, str(root / 'dog' / 'camera.png')), np.dstack([gray] * 3), 1),
        (save(rgba, str(root / 'dog' / 'coffee_rgba.png')), rgba_on_white, 1),
    ]
    return root, expected


def test_raw_round_trip_is_exact_with_ffcv_loader(class_folder, tmp_path):
    root, expected = class_folder
    out = str(tmp_path / 'raw.beton')
    summary = write_images(str(root), out, write_mode='raw', workers=2)

    images, labels = load_with_ffcv_loader(out, len(expected))
    assert summary['num_samples'] == len(expected)
    assert summary['classes'] == ['cat', 'dog']
    assert summary['converted'] == {'L': 1, 'RGBA': 1}
    assert labels.tolist() == [label for _, _, label in expected]
    for image, (path, pixels, _) in zip(images, expected):
        assert image.shape == pixels.shape == (SIZE[1], SIZE[0], 3), path
        if path.endswith('rgba.png'):  # Pillow's compositing may round differently by 1
            assert np.abs(image.astype(int) - pixels).max() <= 1
        else:
            np.testing.assert_array_equal(image, pixels, err_msg=path)

    with open(out + '.json') as handle:
        sidecar = json.load(handle)
    assert sidecar['format'] == 'fastssl-images/1'
    assert sidecar['num_samples'] == len(expected)
    assert sidecar['classes'] == ['cat', 'dog']
    assert [s['source'] for s in sidecar['samples']] == [p for p, _, _ in expected]
    assert all(s['box'] is None for s in sidecar['samples'])
    assert sidecar['skipped'] == []
    assert sidecar['options']['write_mode'] == 'raw'
    assert sidecar['options']['max_resolution'] == 512
    assert sorted(os.listdir(tmp_path)) == ['raw.beton', 'raw.beton.json']  # no temp left


def test_jpg_round_trip_is_close_with_ffcv_loader(class_folder, tmp_path):
    root, expected = class_folder
    out = str(tmp_path / 'jpg.beton')
    write_images(str(root), out, workers=1)  # default write mode: jpg, quality 90

    images, labels = load_with_ffcv_loader(out, len(expected))
    assert labels.tolist() == [0, 0, 1, 1]
    for image, (path, pixels, _) in zip(images, expected):
        assert psnr(image, pixels) > 30, path


def test_max_resolution_caps_the_longest_side(tmp_path):
    src = tmp_path / 'sizes'
    save(photo('coffee', (120, 80)), str(src / 'wide.png'))
    save(photo('astronaut', (30, 120)), str(src / 'tall.png'))
    save(photo('chelsea', (20, 16)), str(src / 'small.png'))
    out = str(tmp_path / 'sizes.beton')
    summary = write_images(str(src), out, max_resolution=60, write_mode='raw', workers=1)

    shapes = [rgb.shape for rgb, _ in read_beton(out)]
    assert shapes == [(16, 20, 3), (60, 15, 3), (40, 60, 3)]  # small, tall, wide
    assert [label for _, label in read_beton(out)] == [-1, -1, -1]  # not an ImageFolder layout
    assert summary['classes'] == []


def test_boxes_become_cropped_samples(tmp_path):
    src = tmp_path / 'scenes'
    scene = photo('coffee', (120, 80))
    save(scene, str(src / 'sub' / 'coffee.png'))
    save(photo('chelsea', (60, 40)), str(src / 'chelsea.png'))
    boxes = {
        'images': [
            {'id': 1, 'file_name': 'sub/coffee.png', 'width': 120, 'height': 80},
            {'id': 2, 'file_name': 'chelsea.png', 'width': 60, 'height': 40},
        ],
        'annotations': [
            {'image_id': 1, 'bbox': [10, 10, 40, 30], 'category_id': 7},  # inside
            {'image_id': 1, 'bbox': [100, 2, 30, 20], 'category_id': 3},  # over the edge
            {'image_id': 1, 'bbox': [60, 60, 10, 10], 'category_id': 3},  # too small
            {'image_id': 2, 'bbox': [5.5, 4.2, 20, 20], 'category_id': 7},  # fractional
        ],
        'categories': [{'id': 7, 'name': 'cup'}, {'id': 3, 'name': 'saucer'}],
    }
    boxes_path = tmp_path / 'boxes.json'
    boxes_path.write_text(json.dumps(boxes))
    out = str(tmp_path / 'boxes.beton')
    summary = write_images(str(src), out, boxes=str(boxes_path), write_mode='raw', workers=2)

    # margin 10% of the box on each side, rounded outwards, clipped to the image
    crops = [(6, 7, 48, 36), (97, 0, 23, 24), (3, 2, 25, 25)]
    sources = [scene, scene, photo('chelsea', (60, 40))]
    samples = read_beton(out)
    assert summary['classes'] == ['saucer', 'cup']  # sorted by category id: 3, 7
    assert summary['small_boxes_skipped'] == 1
    assert [label for _, label in samples] == [1, 0, 1]
    for (rgb, _), (x, y, w, h), source in zip(samples, crops, sources):
        np.testing.assert_array_equal(rgb, source[y : y + h, x : x + w])
    with open(out + '.json') as handle:
        sidecar = json.load(handle)
    assert [s['box'] for s in sidecar['samples']] == [
        [10, 10, 40, 30],
        [100, 2, 30, 20],
        [5.5, 4.2, 20, 20],
    ]
    assert [tuple(s['crop']) for s in sidecar['samples']] == crops
    assert sidecar['samples'][0]['source'] == str(src / 'sub' / 'coffee.png')


def test_crop_region_rounding_and_limits():
    assert crop_region([10, 10, 30, 30], 100, 100, 0.1, 16) == (7, 7, 36, 36)  # 0.1*30 is 3.0…04
    assert crop_region([0, 0, 50, 50], 40, 30, 0.5, 0) == (0, 0, 40, 30)
    assert crop_region([200, 200, 50, 50], 100, 100, 0.1, 0) is None  # outside
    assert crop_region([90, 10, 40, 40], 100, 100, 0.1, 16) is None  # 10 px inside
    # a huge box or margin (edges past the largest float) is cut to the image like any other
    assert crop_region([0, 0, 1.7e308, 20], 100, 100, 0.1, 0) == (0, 0, 100, 22)
    assert crop_region([10, 10, 30, 30], 100, 100, 1e308, 0) == (0, 0, 100, 100)


def test_corrupt_image_is_skipped_and_listed(class_folder, tmp_path, capsys):
    root, expected = class_folder
    src = tmp_path / 'mixed'
    for path, _, _ in expected[:2]:
        save(Image.open(path), str(src / os.path.basename(path)))
    broken = truncated_jpeg(str(src / 'broken.jpg'))
    out = str(tmp_path / 'mixed.beton')

    assert main([str(src), out, '--workers', '2', '--write-mode', 'raw']) == 0

    captured = capsys.readouterr()
    assert 'skipped 1 unreadable images' in captured.err
    assert broken in captured.err and 'truncated' in captured.err
    assert 'samples written: 2' in captured.out
    assert f'output: {out}' in captured.out
    assert len(read_beton(out)) == 2
    with open(out + '.json') as handle:
        sidecar = json.load(handle)
    assert [entry['path'] for entry in sidecar['skipped']] == [broken]
    assert sidecar['num_samples'] == 2


def test_a_pipe_named_like_an_image_is_skipped_not_waited_on(class_folder, tmp_path,
                                                             run_script):
    root, expected = class_folder
    src = tmp_path / 'src'
    save(Image.open(expected[0][0]), str(src / 'a.png'))
    os.mkfifo(src / 'b.png')            # opening it would wait for a writer for ever
    result = run_script('writers/write_images.py', src, tmp_path / 'out.beton', '--workers',
                        2, timeout=120)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / 'out.beton.json').read_text())
    assert sidecar['skipped'] == [{'path': str(src / 'b.png'), 'reason':
                                   'not a regular file (a pipe, socket or device)'}]
    assert sidecar['num_samples'] == 1


def test_list_file_labels_relative_paths_and_missing_entries(class_folder, tmp_path):
    root, expected = class_folder
    listing = tmp_path / 'lists' / 'train.txt'
    listing.parent.mkdir()
    rel = os.path.relpath(expected[2][0], listing.parent)
    listing.write_text(
        f'# a comment\n{expected[0][0]} 4\n\n{rel}\nmissing.png 2\n{expected[1][0]}   0\n'
    )
    out = str(tmp_path / 'list.beton')
    summary = write_images(str(listing), out, write_mode='raw', workers=1)

    samples = read_beton(out)
    assert [label for _, label in samples] == [4, -1, 0]
    np.testing.assert_array_equal(samples[1][0], expected[2][1])  # grayscale -> 3 channels
    assert summary['skipped'] == [
        {'path': str(listing.parent / 'missing.png'), 'reason': 'file not found'}
    ]
    assert summary['classes'] == [] and summary['labels'] == [0, 4]


def test_list_file_labels_are_counted_as_classes(class_folder, tmp_path, run_script):
    """A list file's labels have no names: the summary said 'classes: 0'."""
    root, expected = class_folder
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{expected[0][0]} 3000000000\n{expected[1][0]} 0\n'
                       f'{expected[2][0]} 0\n')
    result = run_script('writers/write_images.py', listing, tmp_path / 'o.beton',
                        '--workers', '1')
    assert result.returncode == 0, result.stderr
    assert 'classes: 2 (0, 3000000000)' in result.stdout.splitlines()


def test_folder_scan_is_sorted_recursive_and_case_insensitive(tmp_path):
    for name in ['b/Z.JPG', 'a/x.png', 'a/deeper/y.TIFF', 'c.webp', '.hidden/q.png']:
        save(photo('astronaut', (8, 8)), str(tmp_path / name))
    (tmp_path / 'notes.txt').write_text('not an image')
    found = scan_folder(str(tmp_path))
    assert [os.path.relpath(s.path, tmp_path) for s in found.samples] == [
        'a/deeper/y.TIFF',
        'a/x.png',
        'b/Z.JPG',
        'c.webp',
    ]
    assert found.classes == [] and {s.label for s in found.samples} == {-1}
    # class folders (a, b; images inside at any depth) beside an image: that image is named
    assert found.loose == [str(tmp_path / 'c.webp')]


def test_list_file_with_a_byte_order_mark_keeps_its_first_image(class_folder, tmp_path):
    """Windows editors start UTF-8 files with a BOM; it used to join the first path, and that
    image was skipped as not found."""
    root, expected = class_folder
    listing = tmp_path / 'bom.txt'
    listing.write_bytes(f'\ufeff{expected[0][0]} 0\n{expected[2][0]} 1\n'.encode('utf-8'))
    summary = write_images(str(listing), str(tmp_path / 'bom.beton'), write_mode='raw',
                           workers=1, progress=False)
    assert summary['skipped'] == [] and summary['num_samples'] == 2
    assert [label for _, label in read_beton(str(tmp_path / 'bom.beton'))] == [0, 1]


def test_files_left_out_for_their_extension_are_counted(class_folder, tmp_path, capsys):
    root, expected = class_folder
    src = tmp_path / 'src'
    save(Image.open(expected[0][0]), str(src / 'cat' / 'a.png'))
    save(Image.open(expected[0][0]), str(src / 'cat' / 'b.gif'))
    save(Image.open(expected[2][0]), str(src / 'dog' / 'c.png'))
    (src / 'dog' / 'c.txt').write_text('a caption')
    (src / 'dog' / 'README').write_text('no extension')
    out = str(tmp_path / 'out.beton')

    assert main([str(src), out, '--workers', '1']) == 0
    err = capsys.readouterr().err
    assert ('note: 3 files left out for their extension (1 without extension, 1 .gif, 1 .txt); '
            'images are read from .jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff\n') in err
    assert json.load(open(out + '.json'))['classes'] == ['cat', 'dog']


def test_images_beside_class_folders_are_named_as_why_there_are_no_classes(
        class_folder, tmp_path, capsys):
    """torchvision's ImageFolder ignores files beside the class folders; the writer keeps
    every image (SRC may be an unlabelled folder with sub-folders), so it says why it wrote
    no classes and which file made it so."""
    root, expected = class_folder
    src = tmp_path / 'src'
    for name, (path, _, _) in zip(('cat/a.png', 'cat/b.png', 'dog/c.png'), expected):
        save(Image.open(path), str(src / name))
    thumb = save(Image.open(expected[3][0]), str(src / 'thumb.png'))
    out = str(tmp_path / 'out.beton')

    assert main([str(src), out, '--workers', '1']) == 0
    err = capsys.readouterr().err
    assert (f'note: written unlabelled because {src} also holds images outside its class '
            f'folders (1: {thumb}); move them into a class folder, or out, for class '
            f'labels\n') in err
    assert [label for _, label in read_beton(out)] == [-1] * 4


def test_float_image_with_a_nan_pixel_is_skipped_not_written_dark(class_folder, tmp_path):
    """One NaN made the 0..1 image's maximum NaN: it was stored unscaled, almost black."""
    root, expected = class_folder
    src = tmp_path / 'src'
    save(Image.open(expected[0][0]), str(src / 'a.png'))
    values = np.asarray(Image.open(expected[2][0]).convert('L'), np.float32) / 255
    values[3, 5] = np.nan
    nan = save(Image.fromarray(values, mode='F'), str(src / 'b.tif'))
    summary = write_images(str(src), str(tmp_path / 'out.beton'), workers=1, progress=False)
    assert summary['num_samples'] == 1
    assert summary['skipped'] == [
        {'path': nan, 'reason': f'1 of {values.size} float pixels are NaN or infinite'}]


def _encoder(max_resolution=512, **field_options):
    from ffcv.fields import RGBImageField

    return ImageEncoder(RGBImageField(max_resolution=max_resolution, **field_options),
                        {'max_resolution': max_resolution, 'box_context': 0.1,
                         'min_box_size': 16})


def test_encoder_reports_an_unreadable_file_instead_of_raising(tmp_path):
    """It runs in pool workers: a raise there would end the write with a traceback."""
    assert _encoder()((str(tmp_path / 'gone.png'), [(0, None)])) == (None, 'file not found', [])
    bad = truncated_jpeg(str(tmp_path / 'cut.jpg'))
    mode, reason, outcomes = _encoder()((bad, [(0, None)]))
    assert mode is None and 'truncated' in reason and outcomes == []


def test_encoder_stores_what_ffcvs_field_encodes(class_folder):
    """Each box of one decoded image: cropped with its margin before FFCV's resize; raw keeps
    the pixels, jpg is FFCV's INTER_AREA resize encoded; a box too small is marked."""
    path, pixels, _ = class_folder[1][0]
    mode, reason, (raw, small) = _encoder(write_mode='raw')(
        (path, [(0, [12, 8, 40, 30]), (1, [0, 0, 5, 5])]))
    assert (mode, reason, small) == ('RGB', None, SMALL_BOX)
    crop, (stored_mode, height, width, data) = raw
    assert crop == (8, 5, 48, 36) and (stored_mode, height, width) == (1, 36, 48)
    np.testing.assert_array_equal(data.reshape(36, 48, 3), pixels[5:41, 8:56])
    _, _, [(crop, (stored_mode, height, width, data))] = _encoder(48, write_mode='jpg')(
        (path, [(0, None)]))
    assert crop is None and (stored_mode, height, width) == (0, 32, 48)
    assert psnr(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1],
                cv2.resize(pixels, (48, 32), interpolation=cv2.INTER_AREA)) > 30


@pytest.fixture(scope='module')
def many_photos(module_tmp):
    """40 real photo crops of varied sizes in two classes: several pool chunks per worker."""
    root = module_tmp.mktemp('many')
    names = ('astronaut', 'chelsea', 'coffee', 'camera', 'rocket', 'cat')
    for i in range(40):
        full = getattr(skimage.data, names[i % len(names)])()
        top, left = 7 * i, 5 * i
        crop = full[top:top + 60 + 3 * i, left:left + 90 - i]
        save(crop, str(root / f'class{i % 2}' / f'{i:02d}.png'))
    return root


def test_the_file_is_the_same_bytes_for_any_number_of_workers(many_photos, tmp_path):
    """FFCV's own writer processes fill pages in the order they finish: with 2 workers which
    samples share a page, and the pages' order, changed from run to run."""
    written = []
    for workers in (1, 2, 2):
        out = tmp_path / f'{len(written)}.beton'
        write_images(many_photos, out, write_mode='proportion', max_resolution=64,
                     workers=workers, progress=False)
        written.append(out.read_bytes())
    assert written[0] == written[1] == written[2]


def test_the_file_is_what_ffcvs_own_single_process_writer_writes(many_photos, tmp_path):
    """The reference: FFCV's DatasetWriter.from_indexed_dataset, one writer process, same
    page size, the same decoded images (``proportion``: its per-sample seeds as the writer's)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.reader import Reader
    from ffcv.writer import DatasetWriter

    from fastssl_common.images import load_rgb

    out = tmp_path / 'ours.beton'
    write_images(many_photos, out, write_mode='proportion', max_resolution=64, workers=2,
                 progress=False)
    samples = json.loads((tmp_path / 'ours.beton.json').read_text())['samples']

    class Photos:
        def __len__(self):
            return len(samples)

        def __getitem__(self, index):
            np.random.seed(index)
            return load_rgb(samples[index]['source']), samples[index]['label']

    reference = tmp_path / 'ffcv.beton'
    fields = {'image': RGBImageField(write_mode='proportion', max_resolution=64),
              'label': IntField()}
    DatasetWriter(str(reference), fields, page_size=int(Reader(str(out)).page_size),
                  num_workers=1).from_indexed_dataset(Photos())
    assert out.read_bytes() == reference.read_bytes()


_DEAD_WORKER_CHECK = """
import os, signal
from fastssl_common.errors import UserError
from writers.image_sources import map_in_order

def dies_on_item_100(item):
    if item == 100:
        os.kill(os.getpid(), signal.SIGKILL)
    return item

try:
    with map_in_order(dies_on_item_100, list(range(300)), 2) as results:
        print('results', len(list(results)))
except UserError as err:
    print('error:', err)
"""


def test_a_dead_image_checking_worker_ends_the_check_instead_of_hanging(repo):
    """``multiprocessing.Pool`` waits for ever for the results a killed worker took with it.
    Run as the writers run, from the main thread of a process of its own: forked from a
    thread of this test process (which holds the threads of every test before it), a
    worker could hang before it read an item."""
    try:
        result = subprocess.run([sys.executable, '-c', _DEAD_WORKER_CHECK], cwd=repo,
                                capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the check waits for ever for the dead worker's results")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'error: an image reading process died \(out of memory\?\) after \d+ '
                        r'of 300 images were read; nothing was written\n', result.stdout)


def _dies_at_once(item):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_dead_before_every_check_is_handed_out_ends_in_one_line():
    """A worker that died while chunks were handed out broke the map outside the check for a
    dead worker (a traceback); with every chunk handed out at once, the pool's manager thread
    could also print 'dictionary changed size during iteration'."""
    with pytest.raises(UserError, match=r'^an image reading process died \(out of memory\?\) '
                                        r'after 0 of 200000 images were read'):
        with map_in_order(_dies_at_once, list(range(200000)), 2) as results:
            list(results)


def test_image_checking_workers_end_quietly_on_ctrl_c():
    """As the video writers' workers: SIGINT's default action, no KeyboardInterrupt traceback."""
    with map_in_order(signal.getsignal, [signal.SIGINT] * 4, 2) as results:
        assert list(results) == [signal.SIG_DFL] * 4


def test_image_checks_come_back_in_order():
    with map_in_order(abs, list(range(-500, 0)), 2) as results:
        assert list(results) == list(range(500, 0, -1))


# ---------------------------------------------------------------------------- CLI errors


def test_strict_stops_at_corrupt_image_and_writes_nothing(
    class_folder, tmp_path, run_script, assert_one_line_error
):
    root, expected = class_folder
    src = tmp_path / 'src'
    save(Image.open(expected[0][0]), str(src / 'a.png'))
    broken = truncated_jpeg(str(src / 'b.jpg'))
    out_dir = tmp_path / 'out'
    out_dir.mkdir()

    result = run_script(
        'writers/write_images.py', src, out_dir / 'x.beton', '--strict', '--workers', '2'
    )
    assert_one_line_error(result, broken)
    assert os.listdir(out_dir) == []  # no OUT, no sidecar, no temp file


def test_list_file_missing_path_is_fatal_under_strict(
    class_folder, tmp_path, run_script, assert_one_line_error
):
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{class_folder[1][0][0]} 1\nnot/there.png 0\n')
    result = run_script(
        'writers/write_images.py', listing, tmp_path / 'x.beton', '--strict', '--workers', '1'
    )
    assert_one_line_error(result, tmp_path / 'not' / 'there.png', 'file not found')
    assert sorted(os.listdir(tmp_path)) == ['list.txt']


def test_list_file_label_beyond_64_bits_is_named_by_line(
    class_folder, tmp_path, run_script, assert_one_line_error
):
    """FFCV stores labels as int64: the writer process died with an OverflowError traceback."""
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{class_folder[1][0][0]} 1\n{class_folder[1][1][0]} '
                       f'99999999999999999999\n')
    result = run_script('writers/write_images.py', listing, tmp_path / 'x.beton')
    assert_one_line_error(result, f'list file {listing}:2: label', '99999999999999999999')
    assert sorted(os.listdir(tmp_path)) == ['list.txt']


def test_list_file_naming_one_image_as_two_classes_is_refused(
    class_folder, tmp_path, run_script, assert_one_line_error
):
    """Listed twice with one label it is written twice (oversampling); with two, one of them
    is wrong, and it used to be written under both."""
    image = class_folder[1][0][0]
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{image} 1\n{class_folder[1][1][0]} 0\n{image} 1\n{image} 3\n')
    result = run_script('writers/write_images.py', listing, tmp_path / 'x.beton')
    assert_one_line_error(result, f'list file {listing}:4: {image} has label 3, and label 1 '
                                  f'on line 1: one image is one class')
    assert sorted(os.listdir(tmp_path)) == ['list.txt']
    # it said "is labelled -1" of the line without a label
    listing.write_text(f'{image} 1\n{image}\n')
    with pytest.raises(UserError, match=f'list.txt:2: {image} has no label, and label 1 on '
                                        f'line 1: one image is one class'):
        read_list_file(str(listing))


@pytest.mark.parametrize('line_end', [' zero', ' 1 extra', '\t1.5'])
def test_a_label_that_is_no_whole_number_is_named(class_folder, tmp_path, line_end):
    """The line was taken for a file name with spaces, skipped as not found, exit status 0."""
    image = class_folder[1][0][0]
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{class_folder[1][1][0]} 0\n{image}{line_end}\n')
    with pytest.raises(UserError, match=rf"^list file {listing}:2: '{line_end.split(None, 1)[0]}"
                                        rf".*' after {image} is not a label \(a whole number\)$"):
        read_list_file(str(listing))
    spaced = tmp_path / f'name{line_end}'      # a file whose name holds the words is read
    spaced.write_bytes(b'')
    listing.write_text(f'{spaced}\n')
    assert read_list_file(str(listing)).samples[0].path == str(spaced)


def test_a_coco_file_as_src_points_to_boxes(tmp_path, run_script, assert_one_line_error):
    coco = tmp_path / 'instances.json'
    coco.write_text('{\n"images": [],\n"annotations": []\n}\n')
    result = run_script('writers/write_images.py', coco, tmp_path / 'x.beton')
    assert_one_line_error(result, f'source {coco} is a JSON file', 'goes with --boxes')
    assert sorted(os.listdir(tmp_path)) == ['instances.json']


@pytest.mark.parametrize('content, held', [
    (['b.gif', 'c.gif', 'd.jfif'], 'it holds 2 .gif, 1 .jfif'),
    ([], 'it is empty'),
])
def test_class_folder_without_a_supported_image_is_refused(
    class_folder, tmp_path, run_script, assert_one_line_error, content, held
):
    """Left out, it shifted the labels of the classes after it (torchvision refuses it)."""
    root, expected = class_folder
    src = tmp_path / 'src'
    save(Image.open(expected[0][0]), str(src / 'a' / 'x.png'))
    (src / 'b').mkdir()
    for name in content:
        save(Image.open(expected[1][0]), str(src / 'b' / name), format='GIF')
    save(Image.open(expected[2][0]), str(src / 'c' / 'y.png'))
    result = run_script('writers/write_images.py', src, tmp_path / 'x.beton')
    assert_one_line_error(result, f'class folder {src / "b"} has no image with a supported '
                                  f'extension (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff)',
                          held)
    assert sorted(os.listdir(tmp_path)) == ['src']


@pytest.fixture
def one_image(tmp_path):
    src = tmp_path / 'one'
    save(photo('astronaut', (8, 8)), str(src / 'a.png'))
    return src


def test_missing_source(tmp_path, run_script, assert_one_line_error):
    assert_one_line_error(
        run_script('writers/write_images.py', tmp_path / 'nope', tmp_path / 'x.beton'),
        tmp_path / 'nope',
    )


def test_folder_without_images(tmp_path, run_script, assert_one_line_error):
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    assert_one_line_error(
        run_script('writers/write_images.py', tmp_path / 'empty', tmp_path / 'x.beton'),
        tmp_path / 'empty',
    )


def test_output_must_end_in_beton(one_image, tmp_path, run_script, assert_one_line_error):
    assert_one_line_error(
        run_script('writers/write_images.py', one_image, tmp_path / 'x.ffcv'), tmp_path / 'x.ffcv'
    )


def test_output_under_a_file(one_image, tmp_path, run_script, assert_one_line_error):
    (tmp_path / 'afile').write_text('')
    out = tmp_path / 'afile' / 'x.beton'
    assert_one_line_error(
        run_script('writers/write_images.py', one_image, out), out, tmp_path / 'afile'
    )


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write into read-only folders')
def test_output_in_read_only_folder(one_image, tmp_path, run_script, assert_one_line_error):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line_error(
            run_script('writers/write_images.py', one_image, locked / 'x.beton'), locked
        )
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(
    'content, complaint',
    [
        ('{not json', 'not valid JSON'),
        ('{"images": [], "categories": []}', "'annotations'"),
        ('{"images": [{"id": 1}], "annotations": [], "categories": []}', "'file_name'"),
        (
            '{"images": [{"id": 1, "file_name": "a.png"}], "categories": [],'
            ' "annotations": [{"image_id": 1, "bbox": [0, 0, 4, 4], "category_id": 9}]}',
            'unknown category_id 9',
        ),
    ],
)
def test_bad_boxes_file(one_image, tmp_path, content, complaint, run_script, assert_one_line_error):
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(content)
    result = run_script(
        'writers/write_images.py', one_image, tmp_path / 'x.beton', '--boxes', boxes
    )
    assert_one_line_error(result, boxes, complaint)
    assert not (tmp_path / 'x.beton').exists()


def test_missing_boxes_file(one_image, tmp_path, run_script, assert_one_line_error):
    boxes = tmp_path / 'nope.json'
    assert_one_line_error(
        run_script('writers/write_images.py', one_image, tmp_path / 'x.beton', '--boxes', boxes),
        boxes,
    )


def test_bad_option_is_one_line(one_image, tmp_path, run_script, assert_one_line_error):
    result = run_script(
        'writers/write_images.py', one_image, tmp_path / 'x.beton', '--write-mode', 'png'
    )
    assert_one_line_error(result, '--write-mode')
