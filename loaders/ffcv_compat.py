"""FFCV 1.0.2's page-cache reader and thread count, without their side effects on Numba and torch.

``OSCacheManager.state_type`` (``os_cache=True``, every loader here) does
``t1 = nb.uint8[::1]; t1.mutable = False``. ``nb.uint8[::1]`` is Numba's one interned
``Array(uint8, 1, 'C')``, shared by every compiled function, so each new loader flips it to
readonly in place and changes its hash. A dispatcher compiled before with a writable uint8
buffer (the previous loader's JPEG decode) then holds an overload key whose hash changed: its
overload table can no longer be iterated, and when the loader is collected Numba's finalizer
prints ``KeyError`` tracebacks and never releases those compiled functions. Here the reader
is built from readonly types of its own, with the signature FFCV's ended up with.

``Compiler.set_num_threads(n)``, which FFCV calls on importing its compiler (n = 1) and on
building and iterating every loader (n = its ``num_workers``), also set torch's thread count:
the model's CPU work ran on the loader's thread count, so on the CPU a run's weights changed
with ``data.num_workers`` (a loading setting) and not with ``OMP_NUM_THREADS``. Here it sets
the threads FFCV's own loops run on (Numba's) only; torch keeps the count it had. Where
FFCV was imported first (a notebook's ``import ffcv``, a script's ``from ffcv... import``),
torch's count is already FFCV's 1: it gets torch's default back, asked of a fresh interpreter
under the same environment (``OMP_NUM_THREADS`` included), else training ran on one thread.
"""
import subprocess
import sys
from importlib.metadata import version

import numba
import numpy as np
import torch
from numba import types


def torch_default_threads():
    """Torch's thread count in a fresh interpreter of this environment."""
    asked = subprocess.run([sys.executable, '-c', 'import torch; print(torch.get_num_threads())'],
                           capture_output=True, text=True)
    return int(asked.stdout) if asked.returncode == 0 and asked.stdout.strip().isdigit() else 1


# before FFCV's compiler is imported, which sets it to 1
TORCH_THREADS = (torch_default_threads() if 'ffcv.pipeline.compiler' in sys.modules
                 else torch.get_num_threads())

from ffcv.memory_managers.os_cache import OSCacheManager  # noqa: E402
from ffcv.pipeline.compiler import Compiler  # noqa: E402

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


def set_num_threads(cls, n):
    """FFCV's thread count for its loops (0 or less: all of Numba's), without torch's."""
    cls.num_threads = n if n >= 1 else numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(cls.num_threads)


if version('ffcv').split('+')[0] == FIXED_VERSION:   # another release: its own code stands
    OSCacheManager.state_type = property(state_type)
    OSCacheManager.compile_reader = compile_reader
    Compiler.set_num_threads = classmethod(set_num_threads)
    torch.set_num_threads(TORCH_THREADS)
