"""writers/pair_options.py: the pairs writer's options checked before any video is read, each
refusal naming its flag; Region Tracker options that would change nothing are refused; the
tracker's settings follow the checked options."""
import pytest

from fastssl_common.errors import UserError
from writers.pair_options import (
    DEFAULT_DETECTOR_MIN_SCORE,
    DEFAULT_PROPOSAL_RANKING,
    check_pair_options,
    region_options,
    region_settings,
)
from writers.region_pairs import DEFAULT_TRACK_SIDE

COMMON = dict(max_resolution=512, jpeg_quality=90, workers=1, strict=False)


def pair_options(gap=4, gap_range=None, seed=0, cut_threshold=0.3, min_motion=0.0,
                 max_frames=None, max_proposals=32):
    return check_pair_options(gap, gap_range, seed, cut_threshold, min_motion, max_frames,
                              max_proposals, COMMON)


def test_fixed_gap_and_gap_range():
    fixed = pair_options(gap=3)
    assert {k: fixed[k] for k in ('gap', 'gap_range', 'grid_step', 'gap_min', 'gap_max')} == \
        dict(gap=3, gap_range=None, grid_step=3, gap_min=3, gap_max=3)
    assert fixed['max_frames_per_video'] is None and fixed['jpeg_quality'] == 90
    ranged = pair_options(gap=None, gap_range=(2, 6), max_frames=40)
    assert {k: ranged[k] for k in ('gap', 'gap_range', 'grid_step', 'gap_min', 'gap_max')} == \
        dict(gap=None, gap_range=[2, 6], grid_step=2, gap_min=2, gap_max=6)
    assert ranged['max_frames_per_video'] == 40


@pytest.mark.parametrize('options, complaint', [
    (dict(gap=None), 'exactly one of --gap K and --gap-range A B'),
    (dict(gap=2, gap_range=(1, 3)), 'exactly one of --gap K and --gap-range A B'),
    (dict(gap=None, gap_range=(3,)), '--gap-range needs two whole numbers A B'),
    (dict(gap=None, gap_range=(5, 3)), r'--gap-range must be two whole numbers 1 <= A <= B'),
    (dict(gap=0), r'--gap must be .*got 0'),
    (dict(seed=-1), r'--seed must be .*got -1'),
    (dict(cut_threshold=1.5), r'--cut-threshold must be .*got 1.5'),
    (dict(min_motion=300), r'--min-motion must be .*got 300'),
    (dict(max_frames=-2), r'--max-frames-per-video must be .*got -2'),
    (dict(max_proposals=-1), r'--max-proposals must be .*got -1'),
])
def test_bad_pair_options_name_their_flag(options, complaint):
    with pytest.raises(UserError, match=complaint):
        pair_options(**options)


def region(proposals=4, track_resolution=DEFAULT_TRACK_SIDE, detector=None, detector_arch=None,
           detector_min_score=DEFAULT_DETECTOR_MIN_SCORE, max_proposals=8,
           proposal_ranking=DEFAULT_PROPOSAL_RANKING):
    return region_options(dict(max_proposals=max_proposals), proposals, track_resolution,
                          detector, detector_arch, detector_min_score, proposal_ranking)


def test_region_options_and_settings():
    assert region(proposals=0) == dict(proposals=0)
    assert region_settings(dict(proposals=0)) is None
    options = region(proposals=4, track_resolution=160)
    assert options == dict(proposals=4, proposal_ranking='motion', detector=None,
                           detector_arch=None, detector_min_score=None, track_resolution=160)
    settings = region_settings(options)
    assert settings.proposals.count == 4 and settings.track_side == 160
    assert settings.detector is None and settings.proposals.ranking == 'motion'
    old = region_settings(region(proposal_ranking='contrast'))
    assert old.proposals.ranking == 'contrast'
    # options recorded before the ranking existed: those files were ranked by contrast
    del options['proposal_ranking']
    assert region_settings(options).proposals.ranking == 'contrast'


@pytest.mark.parametrize('options, complaint', [
    (dict(proposals=9), r'--proposals must be a whole number from 0 to --max-proposals \(8\)'),
    (dict(detector_arch='ssdlite320_mobilenet_v3_large'), '--detector-arch needs --detector'),
    (dict(detector_min_score=0.7), '--detector-min-score needs --detector PATH'),
    (dict(detector_min_score=2), r'--detector-min-score must be .*got 2'),
    (dict(proposals=0, detector='model.pth'), r'--detector needs --proposals N \(N >= 1\)'),
    (dict(proposals=0, track_resolution=160), '--track-resolution needs --proposals N'),
    (dict(track_resolution=16), r'--track-resolution must be .*got 16'),
    (dict(proposals=0, proposal_ranking='contrast'), '--proposal-ranking needs --proposals N'),
    (dict(proposal_ranking='size'), '--proposal-ranking must be one of motion, contrast'),
])
def test_region_options_that_change_nothing_or_are_bad_are_refused(options, complaint):
    with pytest.raises(UserError, match=complaint):
        region(**options)
