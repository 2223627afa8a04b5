"""One video's frame pairs: decode it once, spool the frames its pairs need, keep the pairs.

:func:`read_pairs` is the pairs writer's per-video pool task. It streams the video's frames
once: :class:`writers.pairing.PairSchedule` says which pairs start and end at each frame,
:mod:`writers.shot_cuts` finds the shot cuts and the motion of each pair. A pair is dropped
(and counted) when it spans a cut (a cut at some frame in ``(i, i + gap]``), when its frames
differ by less than ``min_motion`` or when one of its frames could not be read. With
``--proposals`` the Region Tracker (:class:`writers.region_pairs.PairRegions`) tracks each
kept pair's regions through every frame in between, on a thread of its own once a CPU is
spare (:mod:`writers.region_thread`).
"""
import contextlib

import numpy as np

from fastssl_common.formats import NUM_COLUMNS
from writers.pair_options import region_settings
from writers.pairing import PairSchedule
from writers.region_pairs import PairRegions, add_stats, new_stats
from writers.region_thread import RegionsThread
from writers.shot_cuts import THUMB_SIDE, CutDetector, grey, motion
from writers.spool import IMAGE_REF, Spool
from writers.video_common import joined_warnings, read_video
from writers.video_source import VideoError

PAIR = np.dtype([('index_a', '<i8'), ('index_b', '<i8'), ('a', IMAGE_REF), ('b', IMAGE_REF)])


def read_pairs(job, died=None):
    """Pool task ``(source, options, spool path, video key, segment)``: decode one video (or
    its :class:`writers.video_segments.Segment`; None: all of it) once, find cuts, spool the
    frames of its pairs. Never raises for bad input: the result's ``error`` and ``warnings``
    say what went wrong. ``died``: why the task's process died; nothing is read."""
    source, options, spool_path, video_key, segment = job
    result = {'error': None, 'warnings': [], 'info': None, 'frames_read': 0,
              'frames_stored': 0, 'stored_indices': [], 'past_end': 0, 'in_gap': 0,
              'cuts': [],
              'pairs': np.zeros(0, PAIR), 'dropped_cut': 0, 'dropped_motion': 0,
              'dropped_bad_frame': 0, 'tracks': new_stats(),
              'proposals': np.zeros((0, options['max_proposals'], NUM_COLUMNS), np.float32),
              'num_proposals': np.zeros(0, np.int64)}
    if died is not None:
        return dict(result, error=died, died=True)

    def read(reader, counter):
        expected = reader.estimated_frames() or 0
        if options['max_frames_per_video']:
            expected = min(expected, options['max_frames_per_video'])
        if segment is not None:      # its own frames (the video's segments add up to it)
            expected = max(0, (expected if segment.stop is None else segment.stop)
                           - segment.start)
        counter.expect(expected)
        with Spool(spool_path, options['jpeg_quality']) as spool:
            _pair_frames(reader, spool, options, video_key, result, counter, segment)

    read_video(source, options['threads'], result, read)
    if segment is None:
        check_length(result, options)
    return result


def check_length(result, options):
    """Set ``result``'s error for a whole video with no frame or too few for a pair."""
    if result['error'] is None:
        if result['frames_read'] == 0:
            result['error'] = 'no frames could be decoded'
        elif result['frames_read'] <= options['gap_min']:
            result['error'] = (f"only {result['frames_read']} frames, too short for a gap of "
                               f"{options['gap_min']}")


def _pair_frames(reader, spool, options, video_key, result, counter, segment):
    """Stream the frames of ``reader`` (of ``segment``, None: all) once; fill ``result`` with
    pairs, cuts and counts (and the tracked regions of each pair, with ``--proposals``).

    A segment's frames are those at positions ``[start, stop)``: it starts the pairs whose
    first frame is one of them and reads on until they end (``gap_max`` frames past ``stop``
    at most); it counts its own frames, and reports the cuts after ``start`` up to ``stop``
    (the next segment cannot see the cut at its first frame)."""
    schedule = PairSchedule(options['grid_step'], options['gap_min'], options['gap_max'],
                            options['seed'], video_key)
    start = 0 if segment is None else segment.start
    stop = None if segment is None else segment.stop
    last = None if stop is None else stop - 1 + options['gap_max']
    if start:       # the gap draws of the first frames before it, as one task makes them
        schedule.skip(reader.indices_before(start))
    cuts = CutDetector(options['cut_threshold']) if options['cut_threshold'] < 1 else None
    min_motion = options['min_motion']
    max_frames = options['max_frames_per_video']
    settings = region_settings(options)
    # on a thread of its own once a CPU is spare: the decoding and the tracking overlap
    tracker = None if settings is None else PairRegions(settings)
    regions = None if tracker is None else RegionsThread(tracker)
    stored = {}           # index -> spool record (offset, nbytes, height, width)
    grays = {}            # index -> greyscale thumbnail, for first frames awaiting a partner
    pairs = []
    last_cut = -1
    size = None           # the last frame's (height, width) as shown
    previous = None       # the last frame's index
    position = start - 1
    with regions or contextlib.nullcontext():
        for frame in reader.decoded_frames(segment):
            position += 1
            if (max_frames is not None and position >= max_frames) or \
                    (last is not None and position > last):
                break
            own = stop is None or position < stop
            if own:
                result['frames_read'] += 1
                counter.count()
            j = frame.index
            if previous is not None:
                # a frame folder's numbering gap: the pairs ending in it have no second frame (none
                # ends more than gap_max after a first frame, all of which were read)
                for missing in range(previous + 1, min(j, previous + options['gap_max'] + 1)):
                    result['in_gap'] += len(schedule.finish(missing))
            previous = j
            is_first = own and schedule.is_first(j)
            if is_first:
                schedule.start(j)
            needed = is_first or schedule.ends_a_pair(j)
            thumb = None
            try:
                if cuts is not None or (needed and min_motion > 0):
                    thumb = frame.thumbnail(THUMB_SIDE)
                cut = cuts is not None and cuts.is_cut(thumb)
                # a video whose frame size changes (streams joined end to end) has no pair across
                # the change: its two frames would differ in size
                shown = frame.shown_size()
                resized, size = size is not None and shown != size, shown
                if cut or resized:
                    if stop is None or position <= stop:
                        result['cuts'].append(j)
                    last_cut = j
                    if regions is not None:     # the pairs spanning it will be dropped
                        regions.discard_before(j)
                if needed:
                    stored[j] = spool.add(frame.rgb(options['max_resolution']))
                    if min_motion > 0:
                        grays[j] = grey(thumb)
                if regions is not None and (regions.active or (is_first and j in stored)):
                    regions.frame(frame.thumbnail(settings.track_side))
                    if is_first and j in stored:
                        regions.begin(j)
            except VideoError as err:        # an unreadable image in a frame folder
                reader.bad_frames.append((j, str(err)))
            for a in schedule.finish(j):
                gray_a = grays.pop(a, None) if a != j else grays.get(a)
                if a not in stored or j not in stored:
                    result['dropped_bad_frame'] += 1
                elif last_cut > a:              # a cut at some frame c with a < c <= j
                    result['dropped_cut'] += 1
                elif min_motion > 0 and motion(gray_a, grays[j]) < min_motion:
                    result['dropped_motion'] += 1
                else:
                    pairs.append((a, j, stored[a], stored[j]))
                    if regions is not None:     # records are (offset, nbytes, height, width)
                        regions.finish(a, stored[a][2:], stored[j][2:])
                    continue
                if regions is not None:
                    regions.discard(a)
            if not is_first:
                grays.pop(j, None)
            if stop is not None and position >= stop and not schedule.unfinished():
                break           # its pairs are done, and the cut at the next one's first frame
    result['frames_stored'] = len(stored)
    result['stored_indices'] = sorted(stored)
    result['past_end'] = schedule.unfinished()
    records = np.zeros(len(pairs), PAIR)
    for row, (a, b, ref_a, ref_b) in zip(records, pairs):
        row['index_a'], row['index_b'] = a, b
        for end, ref in (('a', ref_a), ('b', ref_b)):
            row[end]['offset'], row[end]['nbytes'], row[end]['height'], row[end]['width'] = ref
    result['pairs'] = records
    if regions is not None:
        rows = tracker.rows
        result['tracks'] = tracker.stats
        result['num_proposals'] = np.array([len(r) for r in rows], np.int64)
        result['proposals'] = np.zeros((len(rows), options['max_proposals'], NUM_COLUMNS),
                                       np.float32)
        for sample, found in zip(result['proposals'], rows):
            sample[:len(found)] = found


def merge_segments(results, options):
    """One video's result from those of its segments, in order (each read cleanly): pairs (in
    one read's order), tracks, counts and warnings joined, frames stored counted once."""
    merged = dict(results[0])
    merged['warnings'] = joined_warnings(results)
    for key in ('frames_read', 'past_end', 'in_gap', 'dropped_cut', 'dropped_motion',
                'dropped_bad_frame'):
        merged[key] = sum(r[key] for r in results)
    merged['cuts'] = [cut for r in results for cut in r['cuts']]
    stored = set().union(*(r['stored_indices'] for r in results))
    merged['frames_stored'], merged['stored_indices'] = len(stored), sorted(stored)
    pairs = np.concatenate([r['pairs'] for r in results])
    # one read lists a video's pairs as they end: by second frame, then first (with drawn gaps
    # a segment's last pair can end after the next segment's first)
    order = np.lexsort((pairs['index_a'], pairs['index_b']))
    merged['pairs'] = pairs[order]
    for key in ('proposals', 'num_proposals'):       # one row per pair with --proposals
        rows = np.concatenate([r[key] for r in results])
        merged[key] = rows[order] if len(rows) else rows
    merged['tracks'] = new_stats()
    for r in results:
        add_stats(merged['tracks'], r['tracks'])
    check_length(merged, options)
    return merged
