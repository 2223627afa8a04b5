"""``jit``: Numba's ``njit`` with the compiler flags and the on-disk cache every compiled
helper in loaders/ uses.

Flags: a helper that does not state ``fastmath`` and ``error_model`` inherits them from
whichever compiled caller first makes Numba compile it: FFCV compiles pipeline stages with
``fastmath=True, error_model='numpy'``, a call from Python passes no flags. The same helper
then gives different floats depending on who called it first in the process (a test or a
tool calling it from Python changed every later loader's pixels, and so a training run's
weights). Stated once here, the numbers depend on the inputs only.

Cache: Numba keys a function's cached machine code on its own source file only, but the code
has every helper it calls from other modules compiled in. Edit ``rgb_row_filter.py`` and
``resize_crop_flip`` would go on running the old horizontal pass from the cache. Here the key
is the sources of every module in loaders/, so any edit there recompiles what is cached.
"""
import functools
import hashlib
import pathlib

from numba import njit
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    _SourceFileBackedLocatorMixin,
)

# LLVM's fast-math flags except nnan and ninf: the ops test for NaN boxes and must keep doing so
FASTMATH = frozenset({'nsz', 'arcp', 'contract', 'afn', 'reassoc'})

PACKAGE = pathlib.Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _sources_digest(stamps):
    """sha256 over the names and contents of the files of ``stamps`` ((path, mtime, size),
    ...), read again when one changes."""
    digest = hashlib.sha256()
    for path, _, _ in stamps:
        digest.update(pathlib.Path(path).name.encode())
        digest.update(pathlib.Path(path).read_bytes())
    return digest.digest()


def sources_stamp(own_file):
    """What a cached function's machine code depends on: its own file and every module of
    loaders/."""
    paths = sorted({str(pathlib.Path(own_file).resolve()),
                    *(str(p) for p in PACKAGE.glob('*.py'))})
    return _sources_digest(tuple((p, *_mtime_size(p)) for p in paths))


def _mtime_size(path):
    stat = pathlib.Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


def _keyed_on_package(locator):
    """Numba's locator class ``locator`` (same cache folder: in-tree ``__pycache__``,
    ``NUMBA_CACHE_DIR``, or the user-wide one) with ``sources_stamp`` as the stamp a cache
    entry is valid for."""
    if locator.get_source_stamp is not _SourceFileBackedLocatorMixin.get_source_stamp:
        return locator                # not a plain source file (IPython cell, zip archive)
    return type(locator.__name__, (locator,),
                {'get_source_stamp': lambda self: sources_stamp(self._py_file)})


class _PackageSourcesCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_keyed_on_package(c) for c in CompileResultCacheImpl._locator_classes]


class _PackageSourcesCache(FunctionCache):
    _impl_class = _PackageSourcesCacheImpl


def jit(function=None, cache=False, **options):
    """``@jit`` or ``@jit(cache=True, inline='always', ...)``: ``njit`` with ``FASTMATH`` and
    NumPy's error model (a division by zero gives inf/nan, as in the FFCV stages); with
    ``cache=True`` cached on disk, keyed on the sources of loaders/."""
    def wrap(py_func):
        dispatcher = njit(py_func, fastmath=set(FASTMATH), error_model='numpy', **options)
        if cache:
            dispatcher._cache = _PackageSourcesCache(py_func)  # what enable_caching() does
        return dispatcher
    return wrap if function is None else wrap(function)
