"""Shared fixtures: the project's command-line scripts run as a user would, and small
real-photo datasets written with the project's own writer."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from writers.write_images import write_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')


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


@pytest.fixture(scope='session')
def small_raw_beton(tmp_path_factory):
    """Same photos stored raw (exact pixels) for comparisons against torchvision."""
    return write_photo_beton(tmp_path_factory, 'small_raw', write_mode='raw')


@pytest.fixture(scope='session')
def video_betons(tmp_path_factory):
    """Frames and frame-pair .betons of a real clip with a planted shot cut (see
    tests/writers/video_fixtures.py), written with the project's video writers."""
    from tests.writers.video_fixtures import write_planted_cut_clip
    from writers.write_video_frames import write_video_frames
    from writers.write_video_pairs import write_video_pairs
    root = tmp_path_factory.mktemp('video')
    clip = root / 'clip.mp4'
    write_planted_cut_clip(str(clip))
    frames, pairs = root / 'frames.beton', root / 'pairs.beton'
    write_video_frames(str(clip), str(frames), workers=1, progress=False)
    write_video_pairs(str(clip), str(pairs), gap=2, workers=1, progress=False)
    return str(frames), str(pairs)
