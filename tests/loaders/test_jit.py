"""Compiled helpers give the same numbers whichever caller compiles them first.

Numba lets a helper that does not state its own compiler flags inherit ``fastmath`` and
``error_model`` from the compiled caller that first triggers its compilation; FFCV compiles
pipeline stages with ``fastmath=True``, a call from Python has no such flags. Without
``loaders.jit`` a test or a tool that called a helper from Python changed the pixels every
later loader in the process produced (and so a training run's weights)."""
import importlib
import os
import pathlib
import pkgutil
import subprocess
import sys

import pytest
from numba.core.registry import CPUDispatcher

import loaders
from tests.conftest import REPO, python_outputs

# One augmented batch of views, computed after the helper was compiled either from Python
# or first from inside a stage compiled as FFCV compiles one.
SCRIPT = """
import sys
import numpy as np
from numba import njit
from loaders.photometric_kernels import augment_view
from loaders.photometric_params import make_strengths, photometric_params

rng = np.random.default_rng(0)
views = rng.integers(0, 256, (32, 64, 64, 3), np.uint8)
params = photometric_params(7, 1, np.arange(32), 1, make_strengths(p_jitter=1.0, p_blur=0.5))
buf, scratch = np.empty((64, 64, 3), np.float32), np.empty((64, 64, 3), np.float32)
floats = []


@njit(fastmath=True, error_model='numpy')  # FFCV's Compiler.compile flags
def stage(view, params, buf, scratch):
    augment_view(view, params, 7, buf, scratch)


if sys.argv[1] == 'stage-first':
    stage(views[0].copy(), params[0, 0], buf, scratch)
for view, p in zip(views, params[:, 0]):
    augment_view(view, p, 7, buf, scratch)
    floats.append(buf.copy())  # before rounding: any change in the arithmetic shows
sys.stdout.write(np.stack(floats).tobytes().hex())
"""


def test_a_helper_gives_the_same_pixels_whoever_compiles_it_first():
    uncached = {**os.environ, 'NUMBA_CACHE_DIR': os.devnull + '-none'}
    python_first, stage_first = python_outputs(
        SCRIPT, [(['python-first'], uncached), (['stage-first'], uncached)])
    assert python_first == stage_first


def test_every_compiled_helper_states_its_flags():
    """Structural guard for the behaviour above: each dispatcher in loaders/ was made by
    ``loaders.jit.jit`` (its flags are explicit, nothing left to inherit)."""
    from loaders.jit import FASTMATH
    helpers = []
    for module in pkgutil.iter_modules(loaders.__path__):
        for name, obj in vars(importlib.import_module(f'loaders.{module.name}')).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__.startswith('loaders.'):
                helpers.append(name)
                assert obj.targetoptions.get('fastmath') == FASTMATH, name
                assert obj.targetoptions.get('error_model') == 'numpy', name
    assert {'augment_view', 'resize_crop_flip', 'draw_views', 'next_uniform'} <= set(helpers)


# One view resized by the cached resize_crop_flip of a copy of loaders/ at PACKAGE_COPY.
RESIZE = """
import numpy as np
from loaders.resize import resize_crop_flip
src = np.random.default_rng(0).integers(0, 256, (120, 100, 3), np.uint8)
dst = np.empty((32, 32, 3), np.uint8)
resize_crop_flip(src, 10.0, 5.0, 90.0, 80.0, False, dst)
print(dst.sum())
"""


@pytest.mark.e2e   # two fresh Pythons compiling in turn, 12 s: make test-e2e
def test_editing_a_helper_module_recompiles_its_cached_callers(tmp_path):
    """resize_crop_flip (cached) has rgb_row_filter's pass compiled in: after an edit of that
    module alone the cache must not serve the old machine code. A real edit of a real copy."""
    copy = tmp_path / 'loaders'
    copy.mkdir()
    for source in pathlib.Path(loaders.__file__).parent.glob('*.py'):
        (copy / source.name).write_text(source.read_text())

    def resized_sum():
        done = subprocess.run([sys.executable, '-c', RESIZE], cwd=tmp_path, text=True,
                              capture_output=True, timeout=300,
                              env={**os.environ, 'PYTHONPATH': f'{tmp_path}{os.pathsep}{REPO}'})
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    before = resized_sum()
    assert list((copy / '__pycache__').glob('resize.resize_crop_flip-*.nbi'))   # cached
    helper = copy / 'rgb_row_filter.py'
    # the plan's weights halved: every pixel of the view about halves
    helper.write_text(helper.read_text().replace(
        '            taps[xo, t] = weights[x, t]', '            taps[xo, t] = weights[x, t] / 2'))
    assert resized_sum() < 0.6 * before
