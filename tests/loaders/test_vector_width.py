"""``wide_vectors()`` makes LLVM use 512-bit vectors in the function that calls it, and only
there, on CPUs with AVX-512 that do not slow down for them."""
import os
import re

import llvmlite.binding as llvm
import numpy as np
import pytest

from loaders.jit import jit
from loaders.photometric_kernels import adjust_hue, adjust_saturation
from loaders.vector_width import compile_cpu_name, prefers_wide_vectors, wide_vectors
from tests.conftest import python_outputs

needs_wide_cpu = pytest.mark.skipif(
    not llvm.get_host_cpu_features().get('avx512f', False)
    or not prefers_wide_vectors(compile_cpu_name()),
    reason='this CPU has no AVX-512, or slows down on it (no 512-bit vectors wanted)')


def zmm_instructions(dispatcher):
    return len(re.findall(r'%zmm\d+', dispatcher.inspect_asm(dispatcher.signatures[0])))


@pytest.mark.parametrize('name', ['skylake-avx512', 'cascadelake', 'cooperlake'])
def test_cpus_that_downclock_on_512_bit_keep_llvms_choice(name):
    assert not prefers_wide_vectors(name)


@pytest.mark.parametrize('name', ['sapphirerapids', 'icelake-server', 'znver4', 'x86-64'])
def test_other_cpus_get_512_bit_vectors_where_they_have_them(name):
    assert prefers_wide_vectors(name)


@jit
def _scaled_wide(x, f):
    wide_vectors()
    for i in range(x.shape[0]):
        x[i] = min(f * x[i], np.float32(1.0))


@jit
def _scaled(x, f):
    for i in range(x.shape[0]):
        x[i] = min(f * x[i], np.float32(1.0))


# Both functions compiled, not run, for the CPU named in NUMBA_CPU_NAME: their 512-bit
# registers used.
ZMM_COUNTS = """
import sys
from numba import float32
from tests.loaders.test_vector_width import _scaled, _scaled_wide, zmm_instructions
for function in (_scaled_wide, _scaled):
    function.compile((float32[::1], float32))
sys.stdout.write(f'{zmm_instructions(_scaled_wide)} {zmm_instructions(_scaled)}')
"""


def compiled_for(cpu_name):
    """The environment of a Python that compiles for ``cpu_name`` (None: this machine's CPU),
    without Numba's on-disk cache."""
    env = {**os.environ, 'NUMBA_CACHE_DIR': os.devnull + '-none'}
    env.pop('NUMBA_CPU_NAME', None)
    if cpu_name:
        env['NUMBA_CPU_NAME'] = cpu_name
    return env


def test_same_results_at_either_width():
    x = np.linspace(0, 1, 1000, dtype=np.float32)
    a, b = x.copy(), x.copy()
    _scaled_wide(a, np.float32(1.5))
    _scaled(b, np.float32(1.5))
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not llvm.get_host_cpu_features().get('avx512f', False),
                    reason='this CPU has no AVX-512 (its features are what Numba compiles for)')
def test_only_the_marked_function_is_vectorised_with_512_bit_registers():
    """Compiled for Ice Lake server, where LLVM prefers 256-bit vectors unless told otherwise
    (for Zen 4 it already picks 512 bits, so this CPU's own build would say nothing)."""
    [counts] = python_outputs(ZMM_COUNTS, [([], compiled_for('icelake-server'))])
    marked, unmarked = map(int, counts.split())
    assert marked > 0
    assert unmarked == 0


@needs_wide_cpu
def test_the_colour_ops_use_512_bit_vectors():
    planes = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    adjust_hue(planes, 0.1)
    adjust_saturation(planes, 1.3)
    assert zmm_instructions(adjust_hue) > 0
    assert zmm_instructions(adjust_saturation) > 0


# MoCo v2 views of smooth random images (as photos are), and whether adjust_hue was marked
# for 512-bit vectors.
VIEWS = """
import sys
import numpy as np
from loaders.photometric_kernels import adjust_hue, augment_view
from loaders.photometric_params import blur_kernel_size, make_strengths, photometric_params

rng = np.random.default_rng(0)
base = rng.random((40, 8, 8, 3))
images = (np.kron(base, np.ones((1, 8, 8, 1))) * 255).astype(np.uint8)
images = np.clip(images + rng.normal(0, 8, images.shape), 0, 255).astype(np.uint8)
params = photometric_params(7, 1, np.arange(40), 1, make_strengths())
buf, scratch = np.empty((64, 64, 3), np.float32), np.empty((64, 64, 3), np.float32)
for image, p in zip(images, params[:, 0]):
    augment_view(image, p, blur_kernel_size(64, 64), buf, scratch)
marked = 'prefer-vector-width' in adjust_hue.inspect_llvm(adjust_hue.signatures[0])
sys.stdout.write(f'{int(marked)} {images.tobytes().hex()}')
"""


def augmented_views(*cpu_names):
    """Per CPU name, whether adjust_hue was marked and the views (compiled side by side)."""
    results = []
    for output in python_outputs(VIEWS, [([], compiled_for(name)) for name in cpu_names]):
        marked, views = output.split()
        results.append((marked == '1', np.frombuffer(bytes.fromhex(views), np.uint8).astype(int)))
    return results


@needs_wide_cpu
def test_views_move_by_at_most_one_level_against_256_bit_code():
    """Compiled for Cascade Lake the kernels keep LLVM's 256-bit vectors; element-wise ops
    give the same floats at either width, the contrast mean's sum and the division may round
    differently, so a view's pixels move by at most 1 of 255, and few of them."""
    (narrow_marked, narrow), (wide_marked, wide) = augmented_views('cascadelake', None)
    assert wide_marked and not narrow_marked
    assert np.abs(wide - narrow).max() <= 1
    assert np.mean(wide != narrow) < 0.01
