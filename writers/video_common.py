"""Reading videos in a process pool, one video per task, with one progress bar over frames.

Both video writers decode each video sequentially in one task (:func:`run_per_video`); the
tasks read their video through :func:`read_video`, report decoded frames through a shared
counter (:class:`FrameCounter`) and return what went wrong rather than raising. A pool
process that dies (the kernel's out-of-memory killer, a crash in a decoder) costs the tasks
it was running one more try each, alone; a task that dies alone too is reported through
``on_death``, and the other videos are written.
"""
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time

import cv2

from fastssl_common.atomic import stop_signals_held
from fastssl_common.errors import UserError, end_quietly_on_stop_signals, end_with_parent
from fastssl_common.progress import progress_bar
from writers.video_source import StoredTooSmall, VideoError, VideoReader, video_summary
from writers.writer_common import MIN_RESOLUTION, default_workers

# the tasks' shared progress, set in every process that runs them: per job its frames
# decoded, frames expected and state (not started (0), started, finished, or started and
# holding a second CPU for a thread of its own), and the job's slot
_PROGRESS = None
_JOB = 0
_REFRESH = None     # the bar's refresh, when the jobs run in this process (no pool to poll)
_REFRESH_EVERY = 0.2        # seconds between those refreshes (each sums every job's counts)
_STARTED, _FINISHED, _WITH_THREAD = 1, 2, 3
_COUNT_EVERY = 8            # frames between updates of the shared counter


class FrameCounter:
    """Progress reporting from inside a per-video task (any process)."""

    def __init__(self):
        self._pending = 0
        self._expected = 0
        self._refreshed = time.monotonic()

    def expect(self, frames):
        """Add ``frames`` (may be negative: a correction) to the expected total."""
        self._expected += frames
        if _PROGRESS is not None:
            _PROGRESS.expected[_JOB] = self._expected

    def count(self, frames=1):
        """Record ``frames`` more decoded frames (published every few frames)."""
        self._pending += frames
        if self._pending >= _COUNT_EVERY:
            self.flush()

    def flush(self):
        if _PROGRESS is not None and self._pending:
            _PROGRESS.done[_JOB] += self._pending
            if _REFRESH is not None and time.monotonic() - self._refreshed >= _REFRESH_EVERY:
                _REFRESH()
                self._refreshed = time.monotonic()
        self._pending = 0

    def settle(self, frames_read):
        """At the end of a video: publish the pending count and correct the expected total
        to the frames really read."""
        self.flush()
        self.expect(frames_read - self._expected)


class Progress:
    """Per job, in shared memory (one writer each: the job's process): frames decoded, frames
    expected, and whether it started and finished (so that a pool worker's death can be pinned
    on the jobs it was running, and a job can claim a CPU the run leaves free: ``workers``, the
    jobs that may run at once)."""

    def __init__(self, jobs, planned=None, workers=1):
        self.workers = workers
        self.planned = list(planned or [0] * jobs)     # frames known before a job starts
        self.done = multiprocessing.Array(ctypes.c_int64, jobs, lock=False)
        self.expected = multiprocessing.Array(ctypes.c_int64, self.planned, lock=False)
        self.state = multiprocessing.Array(ctypes.c_int8, jobs, lock=False)

    def totals(self):
        """(frames decoded, frames expected) over all jobs."""
        return sum(self.done), sum(self.expected)

    def claim_core(self, job, cpus):
        """Claim one of ``cpus`` for a second thread of ``job`` (running), if one is spare:
        held neither by a worker (each holds one while it runs a job or a job waits for it) nor
        by another job's thread. True when claimed: the job holds it until it ends. Without a
        lock (a worker killed holding it would stop every claim after): two jobs claiming at
        the same instant may both get the last one, a thread more than the CPUs for a while."""
        states = bytes(self.state)
        threads = states.count(_WITH_THREAD)
        jobs = states.count(_STARTED) + threads + states.count(0)
        if cpus - min(self.workers, jobs) - threads <= 0:
            return False
        self.state[job] = _WITH_THREAD
        return True

    def forget(self, job):
        """Clear a job that is to run again."""
        self.done[job] = self.state[job] = 0
        self.expected[job] = self.planned[job]


def _init_worker(progress, parent):
    global _PROGRESS
    _PROGRESS = progress
    cv2.setNumThreads(1)       # one video per process; OpenCV threads would only compete
    end_quietly_on_stop_signals()
    end_with_parent(parent)


def claim_spare_core():
    """Within a :func:`run_per_video` job: claim a usable CPU that no worker and no other
    job's thread holds, for a second thread of this job (:meth:`Progress.claim_core`); False
    outside a run."""
    return _PROGRESS is not None and _PROGRESS.claim_core(_JOB, default_workers())


def _run_job(function, number, job):
    """``function(job)`` as job ``number`` of the shared :class:`Progress`."""
    global _JOB
    _JOB = number
    _PROGRESS.state[number] = _STARTED
    result = function(job)
    _PROGRESS.state[number] = _FINISHED
    return result


def run_per_video(function, jobs, workers, progress, desc='reading videos', on_death=None,
                  expected=None):
    """``[function(job) for job in jobs]``, over ``workers`` processes, with a frame bar.

    ``function`` reports progress through :class:`FrameCounter`. A worker that dies (killed
    for memory, crashed in a decoder) takes the jobs it was running with it: those are run
    again one at a time, each in a process of its own, and the rest go on in a fresh pool. A
    job whose own process dies too gets ``on_death(job, reason)`` as its result (``on_death``
    None: UserError). An exception in ``function`` propagates (it is a bug: expected problems
    are returned in the result). One job, or one worker, runs in this process. ``expected``:
    each job's frames as known before it starts (the bar's total until it says otherwise).
    """
    global _PROGRESS, _JOB, _REFRESH
    shared = Progress(len(jobs), expected, workers)
    results = [None] * len(jobs)
    with progress_bar(total=0, unit='frame', desc=desc, enabled=progress is not False) as bar:
        def refresh():
            done, expected = shared.totals()
            if expected != bar.total:
                bar.total = max(expected, done)
                bar.refresh()
            bar.update(done - bar.n)

        if workers <= 1 or len(jobs) <= 1:
            saved = _PROGRESS, _REFRESH
            _PROGRESS, _REFRESH = shared, refresh if progress is not False else None
            try:
                for i, job in enumerate(jobs):
                    _JOB = i
                    shared.state[i] = _STARTED
                    results[i] = function(job)
                    shared.state[i] = _FINISHED
                    refresh()
            finally:
                (_PROGRESS, _REFRESH), _JOB = saved, 0
            return results
        todo = list(range(len(jobs)))
        while _run_pool(function, jobs, todo, workers, shared, results, refresh):
            todo = [i for i in todo if results[i] is None]
            suspects = [i for i in todo if shared.state[i] in (_STARTED, _WITH_THREAD)]
            if not suspects:         # died between jobs: nothing to pin it on
                raise UserError('a video reading process died (out of memory?); nothing was '
                                'written')
            print(f'note: a video reading process died; the {len(suspects)} video task(s) it '
                  f'may have been running are read again, one at a time', file=sys.stderr,
                  flush=True)
            for i in todo:
                shared.forget(i)
            shared.workers = 1          # the suspects run one at a time: one worker's CPU
            for i in suspects:
                results[i] = _run_alone(function, i, jobs[i], shared, refresh, on_death)
            shared.workers = workers
            todo = [i for i in todo if i not in suspects]
    return results


@contextlib.contextmanager
def _no_opencv_threads():
    """OpenCV's thread pool does not survive fork: a process forked while this one has pool
    threads parked can hang for ever in cv2.setNumThreads (_init_worker). With one thread
    there is no pool; the setting is restored after the fork."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _run_pool(function, jobs, todo, workers, shared, results, refresh):
    """Run the jobs numbered ``todo`` in a pool of ``workers`` processes, filling ``results``;
    True when a worker died (the pool is then broken). A broken pool fails its futures itself:
    cancelling them too races its manager thread, which then prints an ``InvalidStateError``
    traceback (CPython gh-107219, in Python 3.11)."""
    if not todo:
        return False
    executor = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(todo)), initializer=_init_worker, initargs=(shared, os.getpid()))
    broken = False
    try:
        futures = {}
        # the fork context starts every worker at the first submit; a stop while it forks
        # would come before the worker is listed, which then stays, waiting for ever
        with _no_opencv_threads(), stop_signals_held():
            for i in todo:
                try:
                    futures[executor.submit(_run_job, function, i, jobs[i])] = i
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True      # a worker died while the jobs were handed out
                    return True
        pending = set(futures)
        while pending and not broken:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.1, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                try:
                    results[futures[future]] = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
            refresh()
        return broken
    except BaseException:        # Ctrl-C, SIGTERM: the workers stop now, not after their video
        # SIGKILL: Python drops a signal that lands in a child still being forked (it clears
        # the pending ones after fork), and a SIGTERM lost so leaves the worker reading on
        for process in multiprocessing.active_children():
            process.kill()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=not broken)


def _run_alone(function, number, job, shared, refresh, on_death):
    """``function(job)`` as job ``number`` in a process of its own; ``on_death(job, reason)``
    if that process dies."""
    context = multiprocessing.get_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_alone,
                              args=(function, number, job, shared, sender, os.getpid()))
    try:
        # a stop inside start() would come after the fork and before ``process`` knew its
        # child, which then read on, unstopped: it takes effect once start() returns
        with _no_opencv_threads(), stop_signals_held():
            process.start()
        sender.close()
        while not receiver.poll(0.1):
            refresh()
        ok, outcome = receiver.recv()
    except EOFError:                  # the process died before it could answer
        ok, outcome = None, None
    except BaseException:             # Ctrl-C, SIGTERM: it stops now
        if process.pid is not None:
            process.kill()            # SIGKILL, as in _run_pool
        raise
    finally:
        sender.close()
        receiver.close()
        if process.pid is not None:
            process.join()
        refresh()
    if ok is None:
        death = death_reason(process.exitcode)
        if on_death is None:
            raise UserError(f'a video reading process {death}; nothing was written')
        shared.forget(number)
        return on_death(job, f'its reading process {death}')
    if not ok:
        raise outcome
    return outcome


def _alone(function, number, job, shared, sender, parent):
    _init_worker(shared, parent)
    try:
        outcome = (True, _run_job(function, number, job))
    except BaseException as err:      # a bug in function: raised again in the parent
        outcome = (False, err)
    sender.send(outcome)
    sender.close()


def death_reason(exitcode):
    """How a process with this exit code ended: 'was killed by SIGKILL (out of memory?)'."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f'was killed by {name}' + (' (out of memory?)' if -exitcode == signal.SIGKILL
                                          else '')
    return f'died (exit code {exitcode})'


def read_video(source, threads, result, read):
    """Open ``source`` and call ``read(reader, counter)``, which decodes (reporting to the
    :class:`FrameCounter` ``counter``) and sets ``result["frames_read"]``. Fills ``result``'s
    ``info``, ``warnings``, ``clean`` (read without a damaged packet or frame) and, for an
    unreadable video, ``error``; then corrects the expected total of the progress bar to the
    frames really read."""
    counter = FrameCounter()
    try:
        with VideoReader(source, threads=threads, min_side=MIN_RESOLUTION) as reader:
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
    except (VideoError, StoredTooSmall) as err:
        result['error'] = str(err)
    finally:
        counter.settle(result['frames_read'])


def joined_warnings(results):
    """The warnings of a video's segment results, each once, in order: a segment may meet
    what the others do not (interlaced pictures part way)."""
    return list(dict.fromkeys(message for result in results for message in result['warnings']))


def reading_warnings(reader, source):
    """What went wrong while reading one video, short of failing: lines for the summary."""
    warnings = []
    if reader.error:
        warnings.append(f'{reader.error}; kept the frames before it')
    if reader.decode_errors:
        warnings.append(f'skipped {reader.decode_errors} damaged packet(s) that did not decode '
                        f'(first {reader.first_decode_error})')
    if reader.alpha_dropped:
        warnings.append('VP8/VP9 transparency is not decoded (FFmpeg drops it): transparent '
                        'pixels are stored with the colour they hold, not white')
    if reader.hdr:
        warnings.append(f'HDR video ({reader.hdr}): stored without tone mapping, colours look '
                        f'washed out')
    if reader.interlaced:
        warnings.append('interlaced video: each picture is stored with its two fields woven '
                        'together (combs where things move); deinterlace it first '
                        '(ffmpeg -i IN -vf bwdif OUT)')
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
    if source.kind == 'frames' and source.duplicates:
        left_out = ', '.join(os.path.basename(path) for path, _ in source.duplicates)
        warnings.append(f'{len(source.duplicates)} frame number(s) named twice; left out '
                        f'{left_out}')
    return warnings


def decoder_threads(workers, videos):
    """FFmpeg threads per decoder: the CPUs shared among the videos decoded at once."""
    return max(1, default_workers() // max(1, min(workers, videos)))
