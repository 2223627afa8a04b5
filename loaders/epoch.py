"""The current epoch, readable from inside compiled FFCV ops.

Numba freezes closure variables as compile-time constants, and FFCV compiles each pipeline
once, so an op cannot simply capture ``epoch``. Instead the op captures the *address* of a
one-element array owned by this cell (a constant that never changes) and reads the value
through FFCV's ctypes ``memcpy`` at run time (``host_array``). The loader wrapper sets the cell
before each epoch's iterator starts; FFCV's prefetch thread for that epoch only starts
afterwards.
"""
import numpy as np
from ffcv.pipeline.compiler import Compiler

from .host_array import make_row_reader


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
        read_row = Compiler.compile(make_row_reader(self._value.reshape(1, 1)))

        def read_epoch():
            out = np.empty(1, dtype=np.int64)
            read_row(0, out)
            return out[0]

        read_epoch.cell = self
        return read_epoch
