"""FFCV 1.0.2's page-cache reader without its damage to Numba's type cache.

``OSCacheManager.state_type`` (``os_cache=True``, every loader here) does
``t1 = nb.uint8[::1]; t1.mutable = False``. ``nb.uint8[::1]`` is Numba's one interned
``Array(uint8, 1, 'C')``, shared by every compiled function, so each new loader flips it to
readonly in place and changes its hash. A dispatcher compiled before with a writable uint8
buffer (the previous loader's JPEG decode) then holds an overload key whose hash changed: its
overload table can no longer be iterated, and when the loader is collected Numba's finalizer
prints ``KeyError`` tracebacks and never releases those compiled functions. Here the reader
is built from readonly types of its own, with the signature FFCV's ended up with.
"""
from importlib.metadata import version

import numpy as np
from ffcv.memory_managers.os_cache import OSCacheManager
from ffcv.pipeline.compiler import Compiler
from numba import types

FIXED_VERSION = '1.0.2'      # the release whose reader this replaces, line for line
READONLY_BYTES = types.Array(types.uint8, 1, 'C', readonly=True)
OFFSETS = types.Array(types.uint64, 1, 'C')


def state_type(self):
    """(the mapped file, sample pointers, sample sizes), as FFCV's property, without mutating
    Numba's shared array type."""
    return types.Tuple([READONLY_BYTES, OFFSETS, OFFSETS])


def compile_reader(self):
    def read(address, mem_state):
        size = mem_state[2][np.searchsorted(mem_state[1], address)]
        return mem_state[0][address:address + size]

    return Compiler.compile(read, READONLY_BYTES(types.uint64, self.state_type))


if version('ffcv').split('+')[0] == FIXED_VERSION:   # another release: its own code stands
    OSCacheManager.state_type = property(state_type)
    OSCacheManager.compile_reader = compile_reader
