"""Host arrays read from inside compiled FFCV ops at run time, by address.

Numba freezes the arrays an op's code captures as compile-time constants (copied into the
machine code), and FFCV compiles each pipeline once. That is wrong for a value that changes
after compilation (the epoch) and wasteful for a per-sample table of a million rows (the
tracked-region table). An op therefore captures only the array's *address* (an integer
constant) and copies the row it needs through FFCV's ctypes ``memcpy`` when it runs; an op
reports back to the host the same way, by writing a row (decode failures).
"""
from ffcv.libffcv import ctypes_memcopy


def _rows(array, name):
    """``array``'s address and row size in bytes, for a C-contiguous 2-D array."""
    if array.ndim != 2 or not array.flags.c_contiguous:
        raise ValueError(f'{name} needs a C-contiguous 2-D array')
    return int(array.ctypes.data), int(array.strides[0])


def make_row_reader(array):
    """A Numba-callable ``read_row(i, out)`` copying row ``i`` of the C-contiguous 2-D
    ``array`` into ``out`` (same dtype, one row long) at call time.

    The function keeps a reference to ``array`` so its memory outlives the op; rows are not
    bounds-checked (callers index with sample ids of the same .beton)."""
    address, row_bytes = _rows(array, 'make_row_reader')

    def read_row(i, out):
        # int(): a uint64 sample id mixed with int64 would give a float in Numba
        ctypes_memcopy(address + int(i) * row_bytes, out.ctypes.data, row_bytes)

    read_row.array = array
    return read_row


def make_row_writer(array):
    """A Numba-callable ``write_row(i, row)`` copying ``row`` (same dtype, one row long) into
    row ``i`` of the C-contiguous 2-D ``array``: what an op reports back to the host. Like
    :func:`make_row_reader` it keeps ``array`` alive and does not bounds-check."""
    address, row_bytes = _rows(array, 'make_row_writer')

    def write_row(i, row):
        ctypes_memcopy(row.ctypes.data, address + int(i) * row_bytes, row_bytes)

    write_row.array = array
    return write_row
