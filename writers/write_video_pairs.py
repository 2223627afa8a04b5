"""Write temporal frame pairs (z_i, z_{i+k}) of videos to an FFCV ``.beton`` plus a sidecar.

    python writers/write_video_pairs.py SRC OUT.beton --gap K        # i mod K == 0
    python writers/write_video_pairs.py SRC OUT.beton --gap-range A B --seed 0
        [--cut-threshold 0.3] [--min-motion 0] [--max-resolution 512] [--jpeg-quality 90]
        [--workers N] [--max-frames-per-video N] [--max-proposals 32] [--strict] [--shard I/N]
        [--segment-frames 120]
        [--proposals N [--proposal-ranking motion|contrast] [--track-resolution 320]
         [--detector PATH [--detector-arch NAME] [--detector-min-score 0.5]]]

The Frame Temporal Invariance pairs of Purushwalkam & Gupta (NeurIPS 2020): for every frame
index ``i`` with ``i mod K == 0`` the pair (frame i, frame i+K); with ``--gap-range A B`` a
seeded gap from [A, B] per pair (:mod:`writers.pairing`). Each video is decoded once
(:mod:`writers.pair_frames`); pairs with a shot cut in (i, i+gap] (``--cut-threshold``) are
dropped and counted, and so are pairs whose two frames differ by less than ``--min-motion``
grey levels (:mod:`writers.shot_cuts` defines both measures).

**Region Tracker.** ``--proposals N`` finds N region proposals on each pair's first frame
and tracks them through every frame up to its second (:mod:`writers.region_pairs`, which
states the stored format exactly); lost tracks are dropped, pairs without a surviving track
are kept (``num_proposals`` 0) for full-frame training.

Sample fields: ``frame_a``, ``frame_b`` (``RGBImageField``, JPEG, each frame stored once per
sample), ``video_id``, ``index_a``, ``index_b``, ``label`` (= video_id) (``IntField``s), and
``proposals`` (``NDArrayField`` float32, ``max_proposals x 9``: box in frame a, box in frame
b, confidence) and ``num_proposals`` (``IntField``: rows in use), filled with ``--proposals
N``, zeros otherwise (:func:`writers.proposal_slots.proposal_slots` gives their byte offsets
for filling in place); :data:`fastssl_common.formats.VIDEO_PAIRS` names them.
``OUT.beton.json`` (:mod:`writers.pairs_sidecar`) holds the video table, the cut frames of
each video, the options and the counts. ``--shard I/N`` writes one shard of SRC's videos
(``merge_betons.py`` joins the shards). A long video is read as segments of at least
``--segment-frames`` frames by several workers at once (:mod:`writers.video_segments`); the
file written is the same.
"""
import os

import numpy as np

from fastssl_common.atomic import stop_signals_held
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import (
    FRAME_A,
    FRAME_B,
    INDEX_A,
    INDEX_B,
    LABEL,
    NUM_PROPOSALS,
    PROPOSAL_DTYPE,
    PROPOSALS,
    VIDEO_ID,
    proposal_shape,
)
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag
from writers.pair_frames import merge_segments, read_pairs
from writers.pair_options import (
    DEFAULT_DETECTOR_MIN_SCORE,
    DEFAULT_MAX_PROPOSALS,
    DEFAULT_PROPOSAL_RANKING,
    MAX_PROPOSAL_ROWS,
    add_ranking_argument,
    check_pair_options,
    region_options,
)
from writers.pairing import video_key
from writers.pairs_sidecar import pairs_metadata
from writers.region_pairs import (
    DEFAULT_TRACK_SIDE,
    add_stats,
    load_compiled_code,
    new_stats,
    stats_summary,
)
from writers.shards import check_shard, print_shard, select_shard
from writers.shot_cuts import DEFAULT_CUT_THRESHOLD
from writers.spool import Constant, spool_folder, write_spooled
from writers.video_options import (
    add_common_arguments,
    common_options,
    nothing_written,
    print_problems,
    video_listing,
)
from writers.video_segments import SEGMENT_FRAMES, check_segment_frames, read_in_segments
from writers.video_source import find_videos
from writers.writer_common import check_output, print_output, write_outputs


def write_video_pairs(src, out, *, gap=None, gap_range=None, seed=0,
                      cut_threshold=DEFAULT_CUT_THRESHOLD, min_motion=0.0, max_resolution=512,
                      jpeg_quality=90, workers=None, max_frames_per_video=None,
                      max_proposals=DEFAULT_MAX_PROPOSALS, proposals=0,
                      track_resolution=DEFAULT_TRACK_SIDE, detector=None, detector_arch=None,
                      detector_min_score=DEFAULT_DETECTOR_MIN_SCORE,
                      proposal_ranking=DEFAULT_PROPOSAL_RANKING, strict=False, shard=None,
                      segment_frames=SEGMENT_FRAMES, progress=None):
    """Write the frame pairs of the videos in ``src`` to ``out`` and ``out + '.json'``.

    Exactly one of ``gap`` (K) and ``gap_range`` ((A, B)) is given. ``max_frames_per_video``
    limits the frames decoded per video (None: all); ``max_proposals`` sizes the proposal
    array (0: no proposal fields); ``proposals`` (N) tracked region proposals per pair fill
    it (0: zeros), tracked at ``track_resolution`` px, from selective search or the
    ``detector`` checkpoint; ``shard`` ('I/N' or (I, N)) keeps the videos of that shard only
    (None: all); ``segment_frames`` (N) reads videos as segments of at least N frames (0:
    each in one task). Returns a summary dict: ``out``, ``sidecar``, ``num_samples``, ``videos``,
    ``skipped``, ``warnings``, ``counts``, ``tracks`` (None without proposals), ``shard``
    (the sidecar's entry, None without a shard) and ``options``.
    Paths may be str or ``pathlib.Path``. Raises UserError for bad input; on failure neither
    file is created.
    """
    src, out = path_argument(src, 'src'), path_argument(out, 'out')
    options = check_pair_options(gap, gap_range, seed, cut_threshold, min_motion,
                                 max_frames_per_video, max_proposals,
                                 common_options(max_resolution, jpeg_quality, workers, strict))
    options.update(region_options(options, proposals, track_resolution, detector,
                                  detector_arch, detector_min_score, proposal_ranking))
    options['segment_frames'] = check_segment_frames(segment_frames)
    shard = check_shard(shard)
    progress = check_flag(progress, 'progress', unset=True)
    out = check_output(out, src)
    listed = find_videos(src)
    sources, shard_entry = select_shard(listed, shard, src, 'video',
                                         video_listing(listed, src))
    root = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    with held_output(out), spool_folder(out) as spool_dir:
        if options['proposals']:
            load_compiled_code()     # once here, before any pool worker forks
        jobs, results = read_videos(sources, options, spool_dir, root, progress)

        counts = dict(videos=0, videos_skipped=0, frames_read=0, frames_stored=0, cuts=0,
                      pairs_written=0, dropped_cut=0, dropped_motion=0, dropped_bad_frame=0)
        videos, skipped, problems, columns = [], [], [], []
        tracks = new_stats()
        for source, result in zip(sources, results):
            path = os.path.abspath(source.path)
            counts['frames_read'] += result['frames_read']
            for key in ('dropped_cut', 'dropped_motion', 'dropped_bad_frame'):
                counts[key] += result[key]
            counts['cuts'] += len(result['cuts'])
            if result['in_gap'] and result['error'] is None and len(result['pairs']):
                # without a word the pairs would be missing from every count of the summary
                result['warnings'].append(f"left out {result['in_gap']} pair(s) whose second "
                                          f"frame is missing from the numbering")
            if strict and (result['error'] or result['warnings']):
                raise UserError(f"video {source.path}: "
                                f"{result['error'] or result['warnings'][0]} (--strict)")
            problems.extend({'path': path, 'message': m} for m in result['warnings'])
            if result['error'] or not len(result['pairs']):
                in_gap = (f", {result['in_gap']} whose second frame is missing from the "
                          f"numbering" if result['in_gap'] else '')
                past_end = (f", {result['past_end']} whose gap ran past the "
                            f"{result['frames_read']} frames read" if result['past_end'] else '')
                reason = result['error'] or (
                    f"no pairs left ({result['dropped_cut']} span a cut, "
                    f"{result['dropped_motion']} below --min-motion, "
                    f"{result['dropped_bad_frame']} with an unreadable frame{in_gap}{past_end})")
                skipped.append({'path': path, 'reason': reason, 'cuts': result['cuts']})
                continue
            pairs = result['pairs']
            counts['frames_stored'] += result['frames_stored']    # of the videos written
            video_id = len(videos)
            videos.append(dict(result['info'], id=video_id,
                               first_sample=counts['pairs_written'], num_samples=len(pairs),
                               frames_read=result['frames_read'], cuts=result['cuts'],
                               dropped_cut=result['dropped_cut'],
                               dropped_motion=result['dropped_motion'],
                               stored_size=[int(pairs['a']['width'][0]),
                                            int(pairs['a']['height'][0])],
                               warnings=result['warnings']))
            columns.append((pairs, video_id, result['proposals'], result['num_proposals']))
            add_stats(tracks, result['tracks'])
            counts['pairs_written'] += len(pairs)
        counts['videos'], counts['videos_skipped'] = len(videos), len(skipped)
        if not videos:
            raise UserError(nothing_written('no frame pairs', src, skipped, shard))
        tracks = stats_summary(tracks) if options['proposals'] else None
        if tracks is not None and not tracks['tracks_kept'] and strict:
            where = f"any of the {counts['pairs_written']} pairs of {src}"
            raise UserError(f"{no_regions(tracks, options['detector'], where)} (--strict)")

        with stop_signals_held():   # slow import (Numba): held as write_images's
            from ffcv.fields import IntField, NDArrayField, RGBImageField

        pairs = np.concatenate([c[0] for c in columns])
        ids = np.concatenate([np.full(len(c[0]), c[1], np.int64) for c in columns])
        image = RGBImageField(write_mode='jpg', max_resolution=options['max_resolution'] or None,
                              jpeg_quality=options['jpeg_quality'])
        fields = {FRAME_A: image, FRAME_B: image, VIDEO_ID: IntField(),
                  INDEX_A: IntField(), INDEX_B: IntField(), LABEL: IntField()}
        values = {FRAME_A: np.ascontiguousarray(pairs['a']),
                  FRAME_B: np.ascontiguousarray(pairs['b']), VIDEO_ID: ids,
                  INDEX_A: pairs['index_a'].astype(np.int64),
                  INDEX_B: pairs['index_b'].astype(np.int64), LABEL: ids}
        if options['max_proposals']:
            shape = proposal_shape(options['max_proposals'])
            fields[PROPOSALS] = NDArrayField(PROPOSAL_DTYPE, shape)
            fields[NUM_PROPOSALS] = IntField()
            if options['proposals']:
                values[PROPOSALS] = np.concatenate([c[2] for c in columns])
                values[NUM_PROPOSALS] = np.concatenate([c[3] for c in columns])
            else:
                values[PROPOSALS] = Constant(np.zeros(shape, np.float32))
                values[NUM_PROPOSALS] = Constant(0)
        metadata = pairs_metadata(src, options, list(fields), len(pairs), videos, skipped,
                                  problems, counts, tracks)
        if shard_entry is not None:
            metadata['shard'] = shard_entry
        sidecar = write_outputs(out, lambda tmp: write_spooled(
            tmp, fields, values, [job[2] for job in jobs]), metadata, progress)
    return dict(out=out, sidecar=sidecar, num_samples=len(pairs), videos=videos,
                skipped=skipped, warnings=problems, counts=counts, tracks=tracks,
                shard=shard_entry, options=metadata['options'])


def read_videos(sources, options, spool_dir, root, progress):
    """``(jobs, results)``: the pool's tasks and one result per source, long videos read as
    segments (:mod:`writers.video_segments`) and their results merged. Each pair's ``spool``
    is its job's."""
    def make_job(number, segment, job_number, threads):
        source = sources[number]
        return (source, dict(options, threads=threads),
                os.path.join(spool_dir, f'{job_number}.jpgs'), video_key(source.path, root),
                segment)

    jobs, parts = read_in_segments(read_pairs, sources, make_job, options,
                                   lambda source: options['max_frames_per_video'], progress)
    for job_number, result in (part for video in parts for part in video):
        for end in ('a', 'b'):
            result['pairs'][end]['spool'] = job_number
    return jobs, [video[0][1] if len(video) == 1 else
                  merge_segments([result for _, result in video], options) for video in parts]


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog='write_video_pairs.py', description=(
        'Write temporal frame pairs (z_i, z_i+k), i mod k = 0, of video files or frame '
        'folders to an FFCV .beton (and OUT.beton.json); pairs across shot cuts are dropped.'))
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--gap', type=int, metavar='K',
                       help='pairs (i, i+K) for every i with i mod K == 0')
    group.add_argument('--gap-range', type=int, nargs=2, metavar=('A', 'B'),
                       help='i on the grid of step A, gap drawn uniformly from [A, B]')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed for --gap-range draws (default 0; needs --gap-range)')
    parser.add_argument('--cut-threshold', type=float, default=DEFAULT_CUT_THRESHOLD,
                        help='colour-histogram distance that marks a shot cut, 0..1; 1 turns '
                             f'cut detection off (default {DEFAULT_CUT_THRESHOLD})')
    parser.add_argument('--min-motion', type=float, default=0.0,
                        help='drop pairs whose frames differ by less than this mean absolute '
                             'grey-level difference (default 0: off)')
    parser.add_argument('--max-frames-per-video', type=int, default=0,
                        help='decode at most this many frames per video, 0 for all (default 0)')
    parser.add_argument('--max-proposals', type=int, default=DEFAULT_MAX_PROPOSALS,
                        help='rows of the Region Tracker proposal array, 0 for none, at '
                             f'most {MAX_PROPOSAL_ROWS} (default {DEFAULT_MAX_PROPOSALS})')
    parser.add_argument('--proposals', type=int, default=0, metavar='N',
                        help='region proposals per pair, tracked from the first frame to the '
                             'second (at most --max-proposals; default 0: none)')
    parser.add_argument('--track-resolution', type=int, default=DEFAULT_TRACK_SIDE,
                        help='longest side of the frames proposals and tracking work on '
                             f'(default {DEFAULT_TRACK_SIDE})')
    parser.add_argument('--detector', metavar='PATH',
                        help='torchvision detection state dict whose detections are the '
                             'proposals (instead of selective search)')
    parser.add_argument('--detector-arch', metavar='NAME',
                        help='its torchvision architecture (default: from the file name)')
    parser.add_argument('--detector-min-score', type=float, default=DEFAULT_DETECTOR_MIN_SCORE,
                        help='lowest detection score kept as a proposal '
                             f'(default {DEFAULT_DETECTOR_MIN_SCORE})')
    add_ranking_argument(parser)
    add_common_arguments(parser)
    return parser


def print_tracks(tracks, detector):
    """The Region Tracker lines of the summary (``detector``: proposals came from one)."""
    pairs, with_tracks = tracks['pairs'], tracks['pairs_with_tracks']
    print(f"region proposals tracked: {tracks['proposals']}, kept {tracks['tracks_kept']} "
          f"({100 * tracks['kept_fraction']:.1f}%)")
    print(f'pairs with tracked regions: {with_tracks} of {pairs} ({pairs - with_tracks} '
          f'without: kept for full-frame pairs, skipped by the Region Tracker)')
    print(f"mean track length: {tracks['mean_track_frames']:.1f} frames "
          f"(kept tracks: {tracks['mean_kept_track_frames']:.1f})")
    foreground = tracks['foreground']
    if foreground['share'] is not None:
        print(f"kept tracks on moving foreground: {100 * foreground['share']:.1f}% of "
              f"{foreground['tracks_judged']} judged (MOG2 background subtractor)")
    if tracks['lost']:
        print('lost tracks: ' + ', '.join(f'{k} {v}' for k, v in tracks['lost'].items()))
    if not tracks['tracks_kept']:
        print(f"note: {no_regions(tracks, detector, 'any pair')} (--strict makes this an "
              f"error)")


def no_regions(tracks, detector, where):
    """What left no pair with a tracked region: tracking lost every proposal, or there was
    none to track (then why)."""
    if tracks['proposals']:
        return f'no tracked region survived in {where}'
    why = ('no detection scored --detector-min-score or more' if detector else
           'selective search found no region in any first frame')
    return f'no region proposal in {where}: {why}'


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.gap is None and args.gap_range is None:
        raise UserError('give --gap K or --gap-range A B')
    replacing = os.path.exists(args.out)
    summary = write_video_pairs(
        args.src, args.out, gap=args.gap, gap_range=args.gap_range, seed=args.seed,
        cut_threshold=args.cut_threshold, min_motion=args.min_motion,
        max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
        workers=args.workers, max_frames_per_video=args.max_frames_per_video,
        max_proposals=args.max_proposals, proposals=args.proposals,
        track_resolution=args.track_resolution, detector=args.detector,
        detector_arch=args.detector_arch, detector_min_score=args.detector_min_score,
        proposal_ranking=args.proposal_ranking, strict=args.strict, shard=args.shard,
        segment_frames=args.segment_frames)
    print_problems(summary)
    print_shard(summary['shard'], 'video')
    counts = summary['counts']
    print(f"videos: {counts['videos']} written, {counts['videos_skipped']} skipped")
    print(f"frames read: {counts['frames_read']}")
    print(f"shot cuts found: {counts['cuts']}")
    print(f"pairs written: {counts['pairs_written']}")
    print(f"dropped for cuts: {counts['dropped_cut']}")
    print(f"dropped for low motion: {counts['dropped_motion']}")
    if counts['dropped_bad_frame']:
        print(f"dropped for unreadable frames: {counts['dropped_bad_frame']}")
    if summary['tracks'] is not None:
        print_tracks(summary['tracks'], summary['options']['detector'])
    print_output(summary, replacing)
    return 0


def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
