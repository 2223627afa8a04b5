"""The current epoch, readable from inside compiled FFCV ops.

Numba freezes closure variables as compile-time constants, and FFCV compiles each pipeline
once, so an op cannot simply capture ``epoch``. Instead the op captures the *address* of a
one-element array owned by this cell (a constant that never changes) and reads the value
through FFCV's ctypes ``memcpy`` at run time. The loader wrapper sets the cell before each
epoch's iterator starts; FFCV's prefetch thread for that epoch only starts afterwards.
"""
import numpy as np
from ffcv.libffcv import ctypes_memcopy


class EpochCell:
    def __init__(self, epoch=0):
        self._value = np.full(1, epoch, dtype=np.int64)

    def set(self, epoch):
        self._value[0] = epoch

    def get(self):
        return int(self._value[0])

    def make_reader(self):
        """A Numba-callable ``read() -> int64`` returning the value current at call time.

        The returned function keeps a reference to the cell so its memory outlives the op.
        """
        address = self._value.ctypes.data
        cell = self

        def read_epoch():
            out = np.empty(1, dtype=np.int64)
            ctypes_memcopy(address, out.ctypes.data, 8)
            return out[0]

        read_epoch.cell = cell
        return read_epoch
