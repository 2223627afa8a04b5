"""The Region Tracker's work moved to a thread of its own once a CPU is spare.

:class:`writers.region_pairs.PairRegions` is 57-80 % of a tracked-proposal video's CPU time
(optical flow, selective search, the background subtractor); the decoding, RGB conversion
and JPEG encoding that feed it are the rest, and both release the GIL in their native code.
While the pool's workers hold every CPU, a second thread per video would only make two
compete for each core. Once the run has a CPU that no worker with a video (or a video
waiting for one) and no other video's thread holds (the last videos of a run; fewer workers
than CPUs, as with ``--workers 1``; one video alone), :class:`RegionsThread` claims it and
hands the tracker's calls to a thread of its own through a short queue, so that the video's
decoding and its tracking overlap on two cores: ``bigbuckbunny.mp4`` alone is read about
1.8x faster so. The tracker gets the same calls in the same order either way: the rows and
counts do not depend on when, or whether, the thread started.
"""
import queue
import threading
import time

from writers.video_common import claim_spare_core

FRAMES_AHEAD = 8      # calls queued ahead of the tracker: a few tracking-size frames
CHECK_EVERY = 0.05    # seconds between looks at the pool for a spare core


class RegionsThread:
    """A context around ``regions`` (a PairRegions) that takes the same calls (``frame``,
    ``begin``, ``discard``, ``discard_before``, ``finish``; ``active`` is answered from the
    calls made) and runs them in order: in the caller's thread until ``claim_core()`` (a
    callable, :func:`writers.video_common.claim_spare_core`) claims a spare CPU, then on a
    thread of its own. An exception raised on the thread is raised by the caller's next call
    and again on leaving the context, in place of the caller's own exception, if any (the
    queued calls are then dropped). On leaving the context without one every call has run:
    ``regions.rows`` and ``regions.stats`` are complete."""

    def __init__(self, regions, claim_core=claim_spare_core, frames_ahead=FRAMES_AHEAD):
        self.regions = regions
        self._claim_core = claim_core
        self._open = set()          # first frames of the pairs begun and not yet ended
        self._calls = queue.Queue(frames_ahead)
        self._thread = None
        self._looked = time.monotonic() - CHECK_EVERY
        self._error = None
        self._cancelled = False

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if self._thread is None:
            return
        self._cancelled = kind is not None
        self._calls.put(None)
        self._thread.join()
        if self._error is not None and value is not self._error:
            raise self._error       # a failing tracker is a bug: it outranks the caller's error

    @property
    def threaded(self):
        """True once the calls go to the tracker's own thread."""
        return self._thread is not None

    @property
    def active(self):
        """True while some pair awaits its second frame (as ``PairRegions.active``)."""
        return bool(self._open)

    def frame(self, rgb):
        if self._thread is None and time.monotonic() - self._looked >= CHECK_EVERY:
            self._looked = time.monotonic()
            if self._claim_core():
                thread = threading.Thread(target=self._run, name='region tracker', daemon=True)
                thread.start()
                self._thread = thread       # only once started: __exit__ joins it
        self._call(self.regions.frame, rgb)

    def begin(self, index):
        self._open.add(index)
        self._call(self.regions.begin, index)

    def discard(self, index):
        self._open.discard(index)
        self._call(self.regions.discard, index)

    def discard_before(self, index):
        self._open = {a for a in self._open if a >= index}
        self._call(self.regions.discard_before, index)

    def finish(self, index_a, stored_a, stored_b):
        self._open.discard(index_a)
        self._call(self.regions.finish, index_a, stored_a, stored_b)

    def _call(self, method, *args):
        if self._thread is None:
            method(*args)
        elif self._error is not None:      # as soon as the caller can know, as in one thread
            raise self._error
        else:
            self._calls.put((method, args))

    def _run(self):
        while True:
            call = self._calls.get()
            if call is None:
                return
            if self._error is None and not self._cancelled:
                try:
                    call[0](*call[1])
                except BaseException as err:    # raised by the caller's next call and on exit
                    self._error = err
