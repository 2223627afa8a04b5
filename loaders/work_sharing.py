"""Samples of a batch handed to the loader's threads one at a time, costliest first.

FFCV runs an op's loop over the batch as a Numba ``prange``. Numba cuts a ``prange`` into one
contiguous block per thread before it starts, so a batch takes as long as its slowest block:
a sample's cost varies by a factor of several (a JPEG's decode time follows its size in
bytes; the blur is drawn for half the views and costs more the larger its sigma), and with 16
threads a block of a 64-sample batch is only 4 samples. Numba's ``set_parallel_chunksize``
would balance the blocks under its TBB threading layer only, not under OpenMP or its own work
queue. Here every thread takes the next unclaimed sample from a shared counter instead, under
any threading layer, and the samples are taken in decreasing order of their estimated cost,
so that the last ones taken are short (the longest-processing-time-first rule):

    order = costliest_first(costs)
    claimed = np.zeros(1, np.int64)
    for _ in my_range(sharing_threads(count)):
        while True:
            i = claim_next(order, claimed)
            if i < 0:
                break
            ...                       # sample i

Each sample's output depends on (seed, epoch, index) only, never on the thread that made it
or on when.
"""
import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from fastssl_common.errors import UserError
from fastssl_common.numbers import check_number

from .jit import jit


def check_threads(num_workers, key):
    """``num_workers`` (the value of config key or argument ``key``; 0 = all cores) as loader
    threads, an int: Numba, which runs FFCV's threads, refuses more than it started with (one
    per core) with a traceback, and FFCV takes a negative number for all cores. 0 gives
    Numba's count: FFCV's own (``os.cpu_count()``) counts cores this process may not run on
    (``taskset``, a SLURM job's or a container's CPU set), which Numba refused."""
    num_workers = check_number(num_workers, key, 1, zero='all cores')
    threads = numba.config.NUMBA_NUM_THREADS
    if num_workers > threads:
        raise UserError(f'{key}={num_workers} exceeds the {threads} threads FFCV can run on '
                        f'this machine (0 = all cores)')
    return num_workers or threads


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


@jit
def costliest_first(costs):
    """The sample positions in decreasing order of ``costs`` (ties in position order)."""
    return np.argsort(-costs, kind='mergesort')


@jit(inline='always')
def claim_next(order, claimed):
    """The next unclaimed sample of ``order`` (from :func:`costliest_first`), or -1 once every
    one is claimed; ``claimed`` (int64, one element, 0 at the start) counts the claims of all
    threads."""
    rank = take_next(claimed)
    return order[rank] if rank < order.shape[0] else -1
