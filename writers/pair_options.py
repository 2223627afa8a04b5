"""The pairs writer's options, checked: gaps, cut and motion thresholds, frame cap, proposals.

Each check raises a UserError naming the command-line flag. Region Tracker options that would
change nothing are refused, not silently ignored.
"""
import os

import numpy as np

from fastssl_common.beton_file import file_sha256
from fastssl_common.errors import UserError, path_argument
from fastssl_common.numbers import check_number
from writers.proposals import RANKINGS, settings_for
from writers.region_pairs import DEFAULT_TRACK_SIDE, RegionSettings

DEFAULT_MAX_PROPOSALS = 32
DEFAULT_DETECTOR_MIN_SCORE = 0.5
DEFAULT_PROPOSAL_RANKING = 'motion'
MAX_PROPOSAL_ROWS = 1024     # 36 kB a sample; arrays far larger overflow FFCV's page size


def add_ranking_argument(parser):
    """The pairs writer's ``--proposal-ranking`` option (checked in :func:`region_options`)."""
    parser.add_argument('--proposal-ranking', choices=RANKINGS, default=DEFAULT_PROPOSAL_RANKING,
                        help='motion: single-strategy selective search plus motion blobs, '
                             'regions moving against their surroundings first; contrast: the '
                             'earlier selective search (fast mode) ranked by colour contrast '
                             f'(default {DEFAULT_PROPOSAL_RANKING})')


def check_pair_options(gap, gap_range, seed, cut_threshold, min_motion, max_frames,
                       max_proposals, common):
    """The checked options, added to the ``common`` ones (``video_options.common_options``):
    besides the given ones, ``grid_step`` (the first frames' grid) and ``gap_min``/``gap_max``
    (the gap range; equal for a fixed gap)."""
    if (gap is None) == (gap_range is None):
        raise UserError('give exactly one of --gap K and --gap-range A B')
    seed = check_number(seed, '--seed', 0)
    if gap is not None:
        gap = check_number(gap, '--gap', 1)
        step, low, high = gap, gap, gap
        if seed:        # a fixed gap draws nothing: the seed would change nothing
            raise UserError('--seed needs --gap-range A B (a fixed --gap draws nothing)')
    else:
        if np.ndim(gap_range) != 1 or len(gap_range) != 2:     # not 4, nor '2 4'
            raise UserError(f'--gap-range needs two whole numbers A B, got {gap_range!r}')
        try:
            low = check_number(gap_range[0], '--gap-range', 1)
            high = check_number(gap_range[1], '--gap-range', low)
        except UserError:       # named with both numbers: B alone says little
            raise UserError(f'--gap-range must be two whole numbers 1 <= A <= B, got '
                            f'{gap_range[0]!r} {gap_range[1]!r}') from None
        step = low
    return dict(common, gap=gap, gap_range=None if gap_range is None else [low, high],
                grid_step=step, gap_min=low, gap_max=high, seed=seed,
                cut_threshold=check_number(cut_threshold, '--cut-threshold', 0, 1,
                                           integer=False),
                # a mean absolute difference of grey levels: 255 at most
                min_motion=check_number(min_motion, '--min-motion', 0, 255, integer=False),
                max_frames_per_video=check_number(max_frames or 0, '--max-frames-per-video',
                                                  1, zero='no cap') or None,
                max_proposals=check_number(max_proposals, '--max-proposals', 0,
                                           MAX_PROPOSAL_ROWS))


def region_options(options, proposals, track_resolution, detector, detector_arch,
                   detector_min_score, proposal_ranking=DEFAULT_PROPOSAL_RANKING):
    """The checked Region Tracker options; a detector checkpoint is checked here once, so
    that a bad one fails before any video is read."""
    if proposal_ranking not in RANKINGS:
        raise UserError(f"--proposal-ranking must be one of {', '.join(RANKINGS)}")
    limit = options['max_proposals']
    proposals = check_number(proposals, '--proposals', 0, limit,
                             what=f'a whole number from 0 to --max-proposals ({limit})')
    detector_min_score = check_number(detector_min_score, '--detector-min-score', 0, 1,
                                      integer=False)
    # options that would change nothing are refused, not silently ignored (a value equal to
    # its default cannot be told from an omitted one, and changes nothing either)
    if detector is None:
        if detector_arch is not None:
            raise UserError('--detector-arch needs --detector PATH')
        if detector_min_score != DEFAULT_DETECTOR_MIN_SCORE:
            raise UserError('--detector-min-score needs --detector PATH')
    if not proposals:
        if detector is not None:
            raise UserError('--detector needs --proposals N (N >= 1)')
        if track_resolution != DEFAULT_TRACK_SIDE:
            raise UserError('--track-resolution needs --proposals N (N >= 1)')
        if proposal_ranking != DEFAULT_PROPOSAL_RANKING:
            raise UserError('--proposal-ranking needs --proposals N (N >= 1)')
        return dict(proposals=0)
    region = dict(proposals=proposals, proposal_ranking=proposal_ranking, detector=None,
                  detector_arch=None, detector_min_score=None,
                  track_resolution=check_number(track_resolution, '--track-resolution', 32))
    if detector is not None:
        from writers.detector import check_detector

        detector = path_argument(detector, '--detector')

        # checked now, so a bad checkpoint fails before any video is read; built in the
        # workers (a model run here would leave OpenMP state that forked workers hang on)
        architecture, _, _ = check_detector(detector, detector_min_score, detector_arch)
        # its bytes, not its path, name the detector: array jobs may copy it to their own
        # scratch, and one path may hold another checkpoint later (merge_betons compares them)
        region.update(detector=os.path.abspath(detector), detector_sha256=file_sha256(detector),
                      detector_arch=architecture, detector_min_score=float(detector_min_score))
    return region


def region_settings(options):
    """The per-video tracker's settings from the checked options (None: no proposals)."""
    if not options['proposals']:
        return None
    # written before the option existed: such files were ranked by colour contrast
    ranking = options.get('proposal_ranking', 'contrast')
    return RegionSettings(settings_for(ranking, options['proposals']),
                          track_side=options['track_resolution'],
                          detector=options['detector'], detector_arch=options['detector_arch'],
                          detector_min_score=options['detector_min_score'])
