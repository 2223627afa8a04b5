"""An FFCV loader whose batch buffers are allocated once, not once per epoch.

FFCV 1.0.2 allocates every op's batch buffers (``batches_ahead + 2`` slots of one batch each;
for the pair loader at batch 64 and 224 px about 150 MB with the decoder's scratch) in each
epoch's iterator, and pins them again when CUDA is available. The kernel then zeroes every
page of them anew on first touch: on epochs of 1000 pairs that was 58 page faults per pair
and 15 % of the pair loader's CPU time (decode limit: 34 per image). Epochs of a million
samples hardly notice; short epochs (demos, small video sets, the benchmarks) do.

``KeptBuffersLoader`` hands the first epoch's buffers to every later epoch. That is safe
because an epoch's prefetch thread is closed and joined before the next epoch starts, so only
one thread ever writes them, and pending CUDA copies out of the pinned slots are waited for.
Batches keep FFCV's contract: valid until the next batch is drawn, the first batch of the
next epoch included. One epoch at a time: starting an epoch ends the previous one.

An epoch's batches are read through :func:`next_batch` (:class:`EpochBatches`): FFCV's own
iterator waits forever when its loading thread has died, or when a later epoch closed it.
"""
import operator
import queue

import torch
from ffcv.loader import Loader


class KeptBuffersLoader(Loader):
    """``ffcv.loader.Loader`` with the same arguments and batches, buffers kept across epochs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._allocate = self.graph.allocate_memory
        self._buffers = {}
        self._epoch_iterator = None
        self.graph.allocate_memory = self._allocate_once

    def _allocate_once(self, batch_size, slots):
        key = (batch_size, slots)
        if key not in self._buffers:
            self._buffers[key] = self._allocate(batch_size, slots)
        return self._buffers[key]

    def __iter__(self):
        previous, self._epoch_iterator = self._epoch_iterator, None
        if previous is not None:
            # Its thread stops within batches_ahead batches of being told to; until then it
            # may still write the slots the next epoch is about to fill.
            previous.close()
            _join_abandoned(previous)
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()   # non-blocking copies may still read the pinned slots
        self._epoch_iterator = super().__iter__()
        return EpochBatches(self._epoch_iterator)


class EpochBatches:
    """One epoch's batches, from FFCV's epoch ``iterator`` (which is also its loading
    thread) through :func:`next_batch`."""

    def __init__(self, iterator):
        self.iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        batch = next_batch(self.iterator)
        if batch is None:
            raise StopIteration
        return batch

    def close(self):
        """End the epoch early: FFCV leaks its loading thread if an iterator is abandoned."""
        self.iterator.close()


def next_batch(iterator):
    """FFCV's next batch, or None at the end of the epoch.

    FFCV's iterator blocks forever on its queue if its loading thread dies (an exception
    in an op); wait on the queue ourselves and fail loudly instead of hanging. The wait is
    on the queue's condition, which a put wakes at once: polling with short sleeps cost
    the main thread CPU time on every wake-up, taken from the decoding threads.
    """
    if iterator.terminate_event.is_set():
        # closed by a later iteration of this loader, whose epoch now fills the buffers
        # that this one's queued batches point into
        raise RuntimeError('this epoch was ended by a later iteration of the same loader '
                           '(one epoch at a time)')
    queue = iterator.output_queue
    try:
        with queue.not_empty:
            while not queue.queue:  # the deque itself: qsize() takes the lock held here
                if not iterator.is_alive():
                    raise RuntimeError('the FFCV loading thread stopped with an error '
                                       '(its traceback is printed above)')
                queue.not_empty.wait(0.05)
    except RuntimeError as err:
        # Ctrl-C or SIGTERM while Condition.wait takes the lock back leaves it unheld, and
        # the with-block's release then hides the stop behind 'release unlocked lock'
        if isinstance(err.__context__, (KeyboardInterrupt, SystemExit)):
            raise err.__context__ from None
        raise
    try:
        return next(iterator)
    except StopIteration:
        return None


def _join_abandoned(iterator):
    """Wait for the thread of a closed FFCV epoch iterator to end.

    Told to stop, it ends at its next put into a full queue, except for its last put, the
    end-of-epoch marker, which FFCV makes without a timeout: an epoch left within
    ``batches_ahead`` batches of its end (a ``break``, a peek at the first batch of a short
    epoch) kept it waiting forever for a reader, and the next epoch with it. Once it has
    taken its last batch there is nothing left to decode, so its queue is emptied for it.
    """
    while True:
        iterator.join(timeout=0.05)
        if not iterator.is_alive():
            return
        if operator.length_hint(iterator.iter_ixes) == 0:
            try:
                while True:
                    iterator.output_queue.get_nowait()
            except queue.Empty:
                pass
