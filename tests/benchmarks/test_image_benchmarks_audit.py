"""The image benchmarks over a user's own images (``--data DIR``): options refused before any
work, skipped images named, the baselines reading the images the .beton holds, FFCV's writer
not reaching an image it cannot read, and DALI timing the batches it is asked for."""
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from benchmarks import dali_baseline, image_writer, loader
from benchmarks.data import baseline_samples, build_beton, stored_jpegs
from fastssl_common.errors import UserError

pytestmark = pytest.mark.unit


def noise(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def jpeg_folder(folder, count, size=(120, 100)):
    folder.mkdir()
    for i in range(count):
        noise(*size, seed=i).save(folder / f'{i}.jpg', quality=90)
    return folder


@pytest.mark.parametrize('module', [loader, dali_baseline, image_writer])
def test_empty_data_is_refused_not_taken_for_generated_images(module):
    # --data "$DIR" with DIR unset: the run went on over generated JPEGs, saying so nowhere
    with pytest.raises(UserError, match=r'^--data needs a folder, got an empty name$'):
        module.resolve(module.build_parser().parse_args(['--data', '']))


def test_image_writer_checks_max_resolution_before_any_work():
    with pytest.raises(UserError, match=r'--max-resolution must be a whole number >= 16'):
        image_writer.resolve(image_writer.build_parser().parse_args(['--max-resolution', '8']))


def test_quick_writer_processes_fit_a_one_cpu_machine(monkeypatch):
    # --quick's 2 writer processes are its own choice, not the user's: one CPU runs one
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0})
    args = image_writer.resolve(image_writer.build_parser().parse_args(['--quick']))
    assert args.workers == 1


def test_image_writer_checks_shards_against_the_images_before_making_them(tmp_path):
    with pytest.raises(UserError, match=r'^--shards 65 is more than the 64 images$'):
        image_writer.resolve(image_writer.build_parser().parse_args(
            ['--quick', '--shards', '65']))
    src = jpeg_folder(tmp_path / 'src', 3)
    (src / 'notes.jpg').write_bytes(b'not a picture')
    # before the readability check, which writes the whole folder once
    with pytest.raises(UserError, match=r'^--shards 5 is more than the 4 images$'):
        image_writer.main(['--quick', '--data', str(src), '--shards', '5'])


def test_build_beton_names_each_skipped_image(tmp_path, capsys):
    src = jpeg_folder(tmp_path / 'src', 3)
    (src / 'broken.jpg').write_bytes((src / '0.jpg').read_bytes()[:200])
    out = tmp_path / 'work' / 'data.beton'
    out.parent.mkdir()
    assert len(build_beton(str(src), str(out), 0, 1)) == 3
    printed = capsys.readouterr().out
    # the sidecar it pointed at lies in the run's temporary folder, removed with it
    assert f"note: skipped {src / 'broken.jpg'}: " in printed
    assert str(out) not in printed


def test_image_writer_refuses_data_with_an_unreadable_image(tmp_path):
    src = jpeg_folder(tmp_path / 'src', 3)
    (src / 'notes.jpg').write_bytes(b'not a picture')
    with pytest.raises(UserError, match=rf'^--data {src}: 1 image\(s\) that write_images skips '
                       rf"\(first: {src / 'notes.jpg'}: "):
        image_writer.main(['--quick', '--data', str(src)])


def test_baselines_read_the_jpegs_the_beton_holds(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    noise(300, 200).save(src / 'a.png')
    noise(90, 240, seed=1).convert('CMYK').save(src / 'b.jpg')
    Image.fromarray(np.full((150, 150), 40000, np.uint16)).save(src / 'c.png')
    beton = tmp_path / 'data.beton'
    samples = build_beton(str(src), str(beton), 64, 1)
    args = SimpleNamespace(data=str(src))
    files = baseline_samples(args, str(beton), samples, str(tmp_path))
    stored = stored_jpegs(str(beton), len(samples))
    assert [label for _, label in files] == [label for _, label in samples]
    for (path, _), (_, data, height, width) in zip(files, stored, strict=True):
        with Image.open(path) as image:
            assert image.format == 'JPEG' and image.size == (width, height)
            assert max(image.size) <= 64
        with open(path, 'rb') as handle:
            assert handle.read() == data.tobytes()
    # generated JPEGs are read as they are (the .beton stores them at their size)
    assert baseline_samples(SimpleNamespace(data=None), str(beton), samples, '') is samples


def test_dali_computes_each_batch_when_it_is_run(tmp_path):
    pytest.importorskip('nvidia.dali')
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(8):
        noise(500, 500, seed=i).save(src / f'{i}.png')
    samples = [(str(src / f'{i}.png'), 0) for i in range(8)]
    args = SimpleNamespace(resolution=224, batch_size=4, workers=1)
    pairs = dali_baseline.dali_loader(samples, args, full=True)
    for _ in pairs:       # the warm-up epoch
        pass
    time.sleep(0.5)       # as while the other methods run their epochs
    seconds, start = [], time.perf_counter()
    for batch in pairs:
        assert len(batch[0]) == 4
        seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
    # the first batch, computed ahead during the pause, came back in under a millisecond
    assert seconds[0] > 0.3 * seconds[1]
