"""Long videos cut into segments that the video writers' workers read at the same time.

A video is one pool task unless it holds more than half a worker's share of SRC
(:func:`worth_splitting`): then it is read as segments of at least ``--segment-frames``
frames (:func:`plan_segments`), each task starting at its segment's first frame, and the
writer joins their results (:func:`read_in_segments`). The file written is the same as from
one task. For the pairs writer a segment owns the pairs whose first frame lies in it and
reads on past its end until they are finished; the shot cut at a segment's first frame is
found by the segment before it, which has the frame before. Only the Region Tracker's
foreground reference differs: it restarts at each segment's first frame, as it does at a cut.

* **Video files** are cut at key frames, where decoding can start afresh: ``container.seek``
  to the key frame decodes exactly the frames from it on. A demuxing pass (no decoding: 2-14
  ms for clips of 132-795 frames) lists every packet's presentation time; a segment checks
  that its frames come out with the times the list gives its positions, and that it gets all
  of them. A key frame is a cut point only when every packet before it in the file shows
  before it and every packet after it after it (no open-GOP picture shown before it is
  decoded after it). Files without an index (MPEG program and transport streams: ``.mpg``,
  ``.ts``, ``.mts``, ``.m2ts``) seek by searching the file and can land past the key frame:
  the reader then seeks earlier until it lands before, and decodes up to the segment's
  first frame (:meth:`writers.video_source.VideoReader.decoded_frames`).
* **Frame folders** are cut anywhere: each frame is its own file.

Files the list cannot vouch for (a packet without a time, two with one time, fewer packets
than the header declares, one marked corrupt: a transport stream that lost data) are read in
one task, as is any video whose segments met a problem (a damaged packet, an unreadable
frame, frames out of step with the list): the writer reads it again in one task, so its
warnings and frame numbers are those of one task.
"""
import os
from dataclasses import dataclass

import numpy as np

from fastssl_common.numbers import check_number
from writers.video_common import decoder_threads, run_per_video
from writers.video_source import VideoError, VideoReader, VideoSource, falls_short

SEGMENT_FRAMES = 120      # shortest segment (the last: half): re-read past its end is little


def check_segment_frames(value):
    """``--segment-frames`` checked: a whole number, at least 1, or 0 (each video in one
    task)."""
    return check_number(value, '--segment-frames', 1, zero='each video in one task')


@dataclass(frozen=True)
class Segment:
    """Positions ``[start, stop)`` of a video's frames (``stop`` None: to the end) and, for a
    video file, the presentation times of the frames from ``start`` on (None: frame folder)."""
    start: int
    stop: int = None
    times: np.ndarray = None


def cut_points(times_in_file_order, key_frames):
    """Positions (in presentation order) of the key frames decoding may start at: sorted
    times, and the packets before each in the file all shown before it."""
    times = np.asarray(times_in_file_order, np.int64)
    keys = np.asarray(key_frames, bool)
    shown = np.sort(times)
    earlier_max = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], times[:-1]]))
    later_min = np.minimum.accumulate(times[::-1])[::-1]
    clean = keys & (earlier_max < times) & (later_min >= times)
    return np.searchsorted(shown, times[clean]), shown


def file_table(path):
    """``(cut points, presentation times)`` of a video file from a demuxing pass, or None
    when the file cannot vouch for them (see the module docstring)."""
    try:
        with VideoReader(VideoSource(path)) as reader:
            listed = reader.packet_times()
            shown = reader.shown_promise()      # an estimate from durations is no count
    except VideoError:                           # unreadable: the one-task read reports it
        return None
    if listed is None:
        return None
    times, keys = listed
    if not times or len(set(times)) != len(times):
        return None
    if shown and falls_short(shown, len(times)):
        return None                              # cut short: the one-task read warns
    return cut_points(times, keys)


def plan_segments(source, max_frames, segment_frames=SEGMENT_FRAMES):
    """The :class:`Segment`\\ s of ``source`` (a VideoSource), reading its first
    ``max_frames`` frames (None: all; the last segment stops there), each at least
    ``segment_frames`` long (the last at least half that; 0: none); None when it is read in
    one task."""
    if not segment_frames:
        return None
    if source.kind == 'frames':
        total = len(source.frame_files)
        starts, times = np.arange(0, total, segment_frames), None
    else:
        table = file_table(source.path)
        if table is None:
            return None
        starts, times = table
        total = len(times)
    limit = None if max_frames is None or max_frames >= total else max_frames
    total = total if limit is None else limit
    chosen = [0]
    for start in starts:
        if start - chosen[-1] >= segment_frames and 2 * (total - start) >= segment_frames:
            chosen.append(int(start))
    if len(chosen) == 1:
        return None
    stops = chosen[1:] + [limit]
    return [Segment(start, stop, None if times is None else times[start:])
            for start, stop in zip(chosen, stops)]


def planned_frames(source, segment):
    """The frames a task reads of ``segment`` (None, a whole video: 0, not known yet)."""
    if segment is None:
        return 0
    if segment.stop is not None:
        return segment.stop - segment.start
    if segment.times is not None:
        return len(segment.times)
    return len(source.frame_files) - segment.start


def worth_splitting(sources, workers):
    """The numbers of the sources a pool of ``workers`` gains from reading as segments: with
    more than one worker, those holding more than half a worker's share of SRC (by bytes: a
    video file's, a frame folder's frames times its first frame's). The others keep the pool
    busy as they are, and SRC's many short videos are not even demuxed first."""
    if workers <= 1:
        return set()
    sizes = [_size(source) for source in sources]
    share = sum(sizes) / workers
    return {n for n, size in enumerate(sizes) if 2 * size > share}


def _size(source):
    try:
        if source.kind == 'frames':
            return len(source.frame_files) * os.path.getsize(source.frame_files[0][1])
        return os.path.getsize(source.path)
    except OSError:     # unreadable: the one-task read reports it
        return 0


def read_in_segments(read, sources, make_job, options, frames_to_read, progress):
    """Run the pool task ``read`` over every source, those :func:`worth_splitting` as
    segments of at least ``options['segment_frames']`` frames (0: none) of the first
    ``frames_to_read(source)`` frames (None: all); a source whose segments did not all read
    cleanly (``result['error']`` None and ``result['clean']``) is read again in one task.
    ``make_job(n, segment, job_number, threads)`` builds source ``n``'s task (``job_number``
    numbers its spool); ``read(job, died=reason)`` is the result (``error``, ``died``) of a
    task whose process died twice (:func:`run_per_video`): its source is not read again.
    Returns ``(jobs, parts)``: every task run, and per source the ``(job
    number, result)`` of its segments in order (one for a source read in one task), each
    result's ``info['segments']`` their number."""
    workers = options['workers']
    worth = worth_splitting(sources, workers) if options['segment_frames'] else set()
    plans = [(n in worth and plan_segments(source, frames_to_read(source),
                                           options['segment_frames'])) or [None]
             for n, source in enumerate(sources)]
    jobs, owners = [], []

    def run(numbers, plans_of, desc):
        first = len(jobs)
        planned = [(n, segment) for n, segments in zip(numbers, plans_of) for segment in segments]
        threads = decoder_threads(workers, len(planned))
        for k, (n, segment) in enumerate(planned):
            jobs.append(make_job(n, segment, first + k, threads))
            owners.append(n)
        # a segment's frames are known before it starts: the bar's total has them from the
        # beginning (a video read in one task adds its header's count when it starts)
        expected = [planned_frames(sources[n], segment) for n, segment in planned]
        results = run_per_video(read, jobs[first:], workers, progress, desc=desc,
                                on_death=lambda job, reason: read(job, died=reason),
                                expected=expected)
        parts = {n: [] for n in numbers}
        for k, result in enumerate(results, first):
            parts[owners[k]].append((k, result))
        return parts

    parts = run(range(len(sources)), plans, 'reading videos')
    for n, results in parts.items():     # a segment that killed its process twice: skipped
        died = [(k, result) for k, result in results if result.get('died')]
        if died:
            parts[n] = died[:1]
    again = [n for n, results in parts.items() if len(results) > 1 and not all(
        result['error'] is None and result.get('clean') for _, result in results)]
    if again:
        parts.update(run(again, [[None]] * len(again), 'reading again in one task'))
    for results in parts.values():
        for _, result in results:
            if result['info'] is not None:      # the sidecar's video table says how it was read
                result['info']['segments'] = len(results)
    return jobs, [parts[n] for n in range(len(sources))]
