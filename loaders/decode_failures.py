"""Stored images the decoder could not decode, counted from inside the compiled op.

The writers encode every JPEG they store, so one that TurboJPEG rejects (FFCV's ``imdecode``
returns -1) was damaged after it was written: bytes overwritten on a disk, or a copy that
kept the file's size. Stock FFCV ignores that return code, and its decode buffer then still
holds the pixels of the sample that used it before: the damaged sample trains on another
image. The decode-once op renders such a sample's views black instead and records it here;
``MultiViewLoader.decode_failures`` reads the tally and the training loop warns after every
epoch in which it grew (``python -m loaders.verify`` checks the whole file).

The op runs its samples on several threads but records once per batch, after them, on the
loading thread: the tally needs no atomics.
"""
import numpy as np
from ffcv.pipeline.compiler import Compiler

from .host_array import make_row_reader, make_row_writer

NO_SAMPLE = np.iinfo(np.int64).max


class DecodeFailures:
    """Images that did not decode: how many (each decode counts: a sample fails again every
    epoch) and the lowest sample index among them."""

    def __init__(self):
        self._cell = np.array([[0, NO_SAMPLE]], np.int64)

    @property
    def count(self):
        return int(self._cell[0, 0])

    @property
    def lowest_sample(self):
        """The lowest sample index that failed, None while none has."""
        lowest = int(self._cell[0, 1])
        return None if lowest == NO_SAMPLE else lowest

    def make_recorder(self):
        """A Numba-callable ``record(failed, batch_indices)``: adds the batch's samples whose
        ``failed`` flag is set (bool, one per position of ``batch_indices``)."""
        read_row = Compiler.compile(make_row_reader(self._cell))
        write_row = Compiler.compile(make_row_writer(self._cell))

        def record(failed, batch_indices):
            row = np.empty(2, np.int64)
            read_row(0, row)
            for k in range(failed.shape[0]):
                if failed[k]:
                    row[0] += 1
                    row[1] = min(row[1], int(batch_indices[k]))
            write_row(0, row)

        record.failures = self     # the cell's memory outlives the op
        return record


def failure_warning(path, new, failures, outcome):
    """The one warning line for ``new`` images of ``path`` that did not decode (``failures``:
    the loader's :class:`DecodeFailures`); ``outcome`` follows "did not decode": when, and
    what was made of them."""
    return (f'{new} image(s) of {path} did not decode{outcome} (lowest sample '
            f'{failures.lowest_sample}); the file was damaged after it was written: '
            f'python -m loaders.verify {path} checks the whole file')
