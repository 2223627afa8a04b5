"""Reading videos in a process pool, one video per task, with one progress bar over frames.

Both video writers decode each video sequentially in one task (:func:`run_per_video`); the
tasks read their video through :func:`read_video`, report decoded frames through a shared
counter (:class:`FrameCounter`) and return what went wrong rather than raising.
"""
import concurrent.futures
import ctypes
import multiprocessing

import cv2

from fastssl_common.errors import UserError
from fastssl_common.progress import progress_bar
from writers.video_source import VideoError, VideoReader, video_summary
from writers.writer_common import MIN_RESOLUTION, default_workers

_COUNTERS = None            # (frames decoded, frames expected) in pool workers
_COUNT_EVERY = 8            # frames between updates of the shared counter


class FrameCounter:
    """Progress reporting from inside a per-video task (any process)."""

    def __init__(self):
        self._pending = 0
        self._expected = 0

    def expect(self, frames):
        """Add ``frames`` (may be negative: a correction) to the expected total."""
        self._expected += frames
        if _COUNTERS is not None and frames:
            with _COUNTERS[1].get_lock():
                _COUNTERS[1].value += int(frames)

    def count(self, frames=1):
        """Record ``frames`` more decoded frames (published every few frames)."""
        self._pending += frames
        if self._pending >= _COUNT_EVERY:
            self.flush()

    def flush(self):
        if _COUNTERS is not None and self._pending:
            with _COUNTERS[0].get_lock():
                _COUNTERS[0].value += self._pending
        self._pending = 0

    def settle(self, frames_read):
        """At the end of a video: publish the pending count and correct the expected total
        to the frames really read."""
        self.flush()
        self.expect(frames_read - self._expected)


def _init_worker(counters):
    global _COUNTERS
    _COUNTERS = counters
    cv2.setNumThreads(1)       # one video per process; OpenCV threads would only compete


def run_per_video(function, jobs, workers, progress, desc='reading videos'):
    """``[function(job) for job in jobs]``, over ``workers`` processes, with a frame bar.

    ``function`` reports progress through :class:`FrameCounter`. A worker that dies raises
    UserError; an exception in ``function`` propagates (it is a bug: expected problems are
    returned in the result).
    """
    global _COUNTERS
    counters = (multiprocessing.Value(ctypes.c_int64, 0), multiprocessing.Value(ctypes.c_int64, 0))
    results = [None] * len(jobs)
    with progress_bar(total=0, unit='frame', desc=desc, enabled=progress is not False) as bar:
        def refresh():
            done, expected = counters[0].value, counters[1].value
            if expected != bar.total:
                bar.total = max(expected, done)
                bar.refresh()
            bar.update(done - bar.n)

        if workers <= 1 or len(jobs) <= 1:
            saved, _COUNTERS = _COUNTERS, counters
            try:
                for i, job in enumerate(jobs):
                    results[i] = function(job)
                    refresh()
            finally:
                _COUNTERS = saved
            return results
        executor = concurrent.futures.ProcessPoolExecutor(
            min(workers, len(jobs)), initializer=_init_worker, initargs=(counters,))
        # OpenCV's thread pool does not survive fork: a worker forked while this process
        # has pool threads parked can hang for ever in cv2.setNumThreads (_init_worker).
        # With one thread there is no pool; the fork context starts every worker at the
        # first submit, so the setting is restored right after.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            try:
                futures = {executor.submit(function, job): i for i, job in enumerate(jobs)}
            finally:
                cv2.setNumThreads(threads)
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.1, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    try:
                        results[futures[future]] = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        raise UserError('a video reading process died (out of memory?); '
                                        'nothing was written') from None
                refresh()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return results


def read_video(source, threads, result, read):
    """Open ``source`` and call ``read(reader, counter)``, which decodes (reporting to the
    :class:`FrameCounter` ``counter``) and sets ``result["frames_read"]``. Fills ``result``'s
    ``info``, ``warnings``, ``clean`` (read without a damaged packet or frame) and, for an
    unreadable video, ``error``; then corrects the expected total of the progress bar to the
    frames really read."""
    counter = FrameCounter()
    try:
        with VideoReader(source, threads=threads) as reader:
            if 0 < min(reader.width, reader.height) < MIN_RESOLUTION:
                # too small to train on, and to track in (optical flow needs 12 px)
                raise VideoError(f'its frames are {reader.width}x{reader.height} px, smaller '
                                 f'than the {MIN_RESOLUTION} px a side needs')
            read(reader, counter)
            result['info'] = video_summary(reader)     # after decoding: the size as shown
            result['info']['decode_errors'] = reader.decode_errors
            result['warnings'].extend(reading_warnings(reader, source))
            # read without a problem: no damaged packet or frame, not cut short
            result['clean'] = not (reader.error or reader.decode_errors or reader.bad_frames
                                   or reader.shortfall())
    except VideoError as err:
        result['error'] = str(err)
    finally:
        counter.settle(result['frames_read'])


def reading_warnings(reader, source):
    """What went wrong while reading one video, short of failing: lines for the summary."""
    warnings = []
    if reader.error:
        warnings.append(f'{reader.error}; kept the frames before it')
    if reader.decode_errors:
        warnings.append(f'skipped {reader.decode_errors} damaged packet(s) that did not decode '
                        f'(first {reader.first_decode_error})')
    short = reader.shortfall()
    if short:
        warnings.append(f'decoded {short[1]} of the {short[0]} frames its header declares '
                        f'(cut short or damaged?)')
    runs = {}      # reason -> indices: the frames after a damaged packet share theirs
    for index, reason in reader.bad_frames:
        runs.setdefault(reason, []).append(index)
    for reason, indices in runs.items():
        which = (f'unreadable frame {indices[0]}' if len(indices) == 1 else
                 f'{len(indices)} unreadable frames ({indices[0]} to {indices[-1]})')
        warnings.append(f'skipped {which}: {reason}')
    if source.kind == 'frames' and source.missing:
        warnings.append(f'{source.missing} frame numbers missing (gaps in the numbering)')
    return warnings


def decoder_threads(workers, videos):
    """FFmpeg threads per decoder: the CPUs shared among the videos decoded at once."""
    return max(1, default_workers() // max(1, min(workers, videos)))
