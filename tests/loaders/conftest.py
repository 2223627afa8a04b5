"""Fixtures of the loader tests: pure-Python pipelines, decode counting, planted regions,
float photos, collecting a loader's views."""
import ffcv.fields.rgb_image as ffcv_rgb
import numpy as np
import pytest
from ffcv.pipeline.compiler import Compiler

import loaders.multiview_decoder as mvd


@pytest.fixture
def python_pipelines():
    """Run FFCV pipelines as plain Python (our Numba helpers stay compiled): the same code
    without compiling a pipeline per loader, which keeps these tests fast."""
    Compiler.set_enabled(False)
    yield
    Compiler.set_enabled(True)


@pytest.fixture
def counting_imdecode(monkeypatch, python_pipelines):
    """Run FFCV pipelines as plain Python and count every JPEG decode call."""
    calls = {'ours': 0, 'stock': 0}

    def counter(key, real):
        def wrapped(*args):
            calls[key] += 1
            return real(*args)
        return wrapped

    monkeypatch.setattr(mvd, 'imdecode', counter('ours', mvd.imdecode))
    monkeypatch.setattr(ffcv_rgb, 'imdecode', counter('stock', ffcv_rgb.imdecode))
    yield calls


@pytest.fixture(scope='session')
def planted_regions_beton(tmp_path_factory):
    """See tests/loaders/region_fixtures.py."""
    from tests.loaders.region_fixtures import write_planted_regions
    return write_planted_regions(tmp_path_factory.mktemp('planted') / 'planted.beton')


@pytest.fixture(scope='session')
def float_photos():
    """Real float32 H x W x 3 images in [0, 1] (uint8-quantised, as decoded views are)."""
    from skimage import data
    from skimage.transform import resize
    out = []
    for im in (data.astronaut(), data.chelsea(), data.coffee()):
        small = resize(im, (64, 80), anti_aliasing=True)
        out.append((np.round(small * 255) / 255).astype(np.float32))
    return out


@pytest.fixture
def collect():
    """``collect(loader, epoch)``: {sample index: its views (V, H, W, 3), a numpy copy} of
    the loader's ``epoch``."""
    def run(loader, epoch):
        loader.set_epoch(epoch)
        out = {}
        for views, indices, _ in loader:
            for v, i in zip(views.numpy(), indices.numpy()):
                out[int(i)] = v.copy()  # the batch lives in FFCV's ring buffer
        return out
    return run
