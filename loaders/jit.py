"""``jit``: Numba's ``njit`` with the compiler flags every compiled helper in loaders/ uses.

A helper that does not state ``fastmath`` and ``error_model`` inherits them from whichever
compiled caller first makes Numba compile it: FFCV compiles pipeline stages with
``fastmath=True, error_model='numpy'``, a call from Python passes no flags. The same helper
then gives different floats depending on who called it first in the process (a test or a
tool calling it from Python changed every later loader's pixels, and so a training run's
weights). Stated once here, the numbers depend on the inputs only.
"""
from numba import njit

# LLVM's fast-math flags except nnan and ninf: the ops test for NaN boxes and must keep doing so
FASTMATH = frozenset({'nsz', 'arcp', 'contract', 'afn', 'reassoc'})


def jit(function=None, **options):
    """``@jit`` or ``@jit(cache=True, inline='always', ...)``: ``njit`` with ``FASTMATH`` and
    NumPy's error model (a division by zero gives inf/nan, as in the FFCV stages)."""
    return njit(function, fastmath=set(FASTMATH), error_model='numpy', **options)
