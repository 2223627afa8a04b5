"""make_row_reader: compiled code copies a row of a host array as it is at call time."""
import gc
import weakref

import numpy as np
import pytest
from ffcv.pipeline.compiler import Compiler
from numba import njit

from loaders.host_array import make_row_reader


def test_reads_the_row_current_at_call_time():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    read_row = Compiler.compile(make_row_reader(table))
    out = np.empty(3, np.float32)
    read_row(2, out)
    np.testing.assert_array_equal(out, [6, 7, 8])
    table[2] = (-1, -2, -3)  # after compilation
    read_row(2, out)
    np.testing.assert_array_equal(out, [-1, -2, -3])


def test_uint64_sample_ids_inside_compiled_code():
    """FFCV's sample ids are uint64; the reader is called from other compiled code."""
    table = np.arange(10, dtype=np.int64).reshape(5, 2) * 10
    read_row = Compiler.compile(make_row_reader(table))

    @njit
    def gather(ids):
        out = np.empty((ids.shape[0], 2), np.int64)
        for k in range(ids.shape[0]):
            read_row(ids[k], out[k])
        return out

    np.testing.assert_array_equal(gather(np.array([4, 0, 3], np.uint64)), table[[4, 0, 3]])


def test_refuses_arrays_it_cannot_address_by_row():
    with pytest.raises(ValueError, match='C-contiguous 2-D'):
        make_row_reader(np.zeros(6))
    with pytest.raises(ValueError, match='C-contiguous 2-D'):
        make_row_reader(np.zeros((4, 6))[:, ::2])


def test_reader_keeps_the_array_alive():
    table = np.ones((3, 2))
    reader = make_row_reader(table)
    alive = weakref.ref(table)
    del table
    gc.collect()
    assert alive() is not None
    out = np.empty(2)
    Compiler.compile(reader)(1, out)
    np.testing.assert_array_equal(out, [1, 1])
    del reader
    gc.collect()
    assert alive() is None
