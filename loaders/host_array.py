"""Host arrays read from inside compiled FFCV ops at run time, by address.

Numba freezes the arrays an op's code captures as compile-time constants (copied into the
machine code), and FFCV compiles each pipeline once. That is wrong for a value that changes
after compilation (the epoch) and wasteful for a per-sample table of a million rows (the
tracked-region table). An op therefore captures only the array's *address* (an integer
constant) and copies the row it needs through FFCV's ctypes ``memcpy`` when it runs.
"""
from ffcv.libffcv import ctypes_memcopy


def make_row_reader(array):
    """A Numba-callable ``read_row(i, out)`` copying row ``i`` of the C-contiguous 2-D
    ``array`` into ``out`` (same dtype, one row long) at call time.

    The function keeps a reference to ``array`` so its memory outlives the op; rows are not
    bounds-checked (callers index with sample ids of the same .beton)."""
    if array.ndim != 2 or not array.flags.c_contiguous:
        raise ValueError('make_row_reader needs a C-contiguous 2-D array')
    address = int(array.ctypes.data)
    row_bytes = int(array.strides[0])

    def read_row(i, out):
        # int(): a uint64 sample id mixed with int64 would give a float in Numba
        ctypes_memcopy(address + int(i) * row_bytes, out.ctypes.data, row_bytes)

    read_row.array = array
    return read_row
