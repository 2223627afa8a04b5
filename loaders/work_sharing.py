"""Samples of a batch handed to the loader's threads one at a time, as each thread gets free.

FFCV runs an op's loop over the batch as a Numba ``prange``. Numba cuts a ``prange`` into one
contiguous block per thread before it starts, so a batch takes as long as its slowest block:
a sample's cost varies by a factor of several (image size; the blur is drawn for half the
views, and its cost grows with sigma), and with 16 threads a block of a 64-sample batch is
only 4 samples. Numba's ``set_parallel_chunksize`` would balance the blocks under its TBB
threading layer only, not under OpenMP or its own work queue. Here every thread takes the next
unclaimed sample from a shared counter instead, under any threading layer:

    next_sample = np.zeros(1, np.int64)
    for _ in my_range(sharing_threads(count)):
        while True:
            i = take_next(next_sample)
            if i >= count:
                break
            ...                       # sample i

Each sample's output depends on (seed, epoch, index) only, never on the thread that made it.
"""
import numba
from numba.core import types
from numba.extending import intrinsic

from .jit import jit


@intrinsic
def _fetch_add_one(typingctx, counter):
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        one = context.get_constant(types.int64, 1)
        # 'monotonic': the samples share nothing; the end of the prange orders the writes
        return builder.atomic_rmw('add', array.data, one, 'monotonic')
    return types.int64(counter), codegen


@jit(inline='always')
def take_next(counter):
    """``counter[0]`` before adding 1 to it, atomically (``counter``: int64 array); callable
    from Python too, as FFCV runs pipelines when its compiler is off."""
    return _fetch_add_one(counter)


@jit
def sharing_threads(count):
    """How many threads share ``count`` samples: the calling thread's Numba thread count,
    at most one per sample."""
    return max(1, min(numba.get_num_threads(), count))
