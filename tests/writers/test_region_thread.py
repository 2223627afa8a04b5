"""The Region Tracker on a thread of its own (:class:`writers.region_thread.RegionsThread`):
the same calls give the same rows and counts as in one thread, whenever the thread starts;
``active`` answers as the tracker would; errors on the thread reach the caller; a caller's
error ends the thread without running the calls still queued."""
import threading
import time

import cv2
import numpy as np
import pytest

from benchmarks.synthetic_video import moving_patch_sequence
from writers import region_thread
from writers.proposals import settings_for
from writers.region_pairs import PairRegions, RegionSettings
from writers.region_thread import RegionsThread

GAP = 4


@pytest.fixture(scope='module')
def frames():
    # the cat patch walking over the coffee photo (real photographs, 320 x 240)
    return moving_patch_sequence(30, velocity=(3.0, 1.0))[0]


def feed(regions, frames, seen=None):
    """A pairs writer's calls: pairs (i, i + GAP) from every GAP-th frame, a shot cut at frame
    13 (the pairs spanning it dropped), the pair from frame 20 discarded. ``seen`` collects
    ``regions.active`` before each frame."""
    for index, frame in enumerate(frames):
        if seen is not None:
            seen.append(regions.active)
        if index == 13:
            regions.discard_before(index)
        regions.frame(frame)
        if index >= GAP and index % GAP == 0 and index - GAP not in (8, 12, 20):
            regions.finish(index - GAP, (240, 320), (240, 320))
        if index == 24:
            regions.discard(20)
        if index % GAP == 0 and index + GAP < len(frames):
            regions.begin(index)


def tracked(frames, wrap=None, seen=None):
    regions = PairRegions(RegionSettings(settings_for('motion', 3)))
    if wrap is None:
        feed(regions, frames, seen)
    else:
        with wrap(regions) as threaded:
            feed(threaded, frames, seen)
        assert threaded.threaded
    return regions


def assert_same(got, expected):
    assert len(got.rows) == len(expected.rows) == 4
    for rows, want in zip(got.rows, expected.rows):
        np.testing.assert_array_equal(rows, want)
    assert got.stats == expected.stats


def test_rows_and_counts_are_those_of_one_thread(frames):
    alone = tracked(frames)
    assert sum(len(rows) for rows in alone.rows) > 0
    assert_same(tracked(frames, lambda r: RegionsThread(r, claim_core=lambda: True)), alone)


def test_a_thread_started_part_way_gives_the_same_rows(frames, monkeypatch):
    monkeypatch.setattr(region_thread, 'CHECK_EVERY', 0.0)
    looks = []

    def spare_after_ten_frames():
        looks.append(None)
        return len(looks) > 10

    alone = tracked(frames)
    assert_same(tracked(frames, lambda r: RegionsThread(r, claim_core=spare_after_ten_frames)),
                alone)
    assert len(looks) == 11          # it looked at every frame until it started


def test_never_started_without_a_spare_core(frames):
    regions = PairRegions(RegionSettings(settings_for('motion', 3)))
    with RegionsThread(regions, claim_core=lambda: False) as threaded:
        feed(threaded, frames)
    assert not threaded.threaded
    assert_same(regions, tracked(frames))


def test_active_answers_as_the_tracker_does(frames):
    direct, queued = [], []
    tracked(frames, seen=direct)
    tracked(frames, lambda r: RegionsThread(r, claim_core=lambda: True), seen=queued)
    assert queued == direct and True in direct and False in direct


def feed_until_it_fails(threaded, frame):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        threaded.frame(frame)


def test_an_error_on_the_thread_is_raised_by_the_next_call_and_on_leaving(frames):
    regions = PairRegions(RegionSettings(settings_for('motion', 3)))
    with pytest.raises(cv2.error):
        with RegionsThread(regions, claim_core=lambda: True) as threaded:
            threaded.frame(frames[0])
            threaded.frame(np.zeros((4, 4, 7), np.uint8))   # seven channels: not RGB
            with pytest.raises(cv2.error):
                feed_until_it_fails(threaded, frames[1])
    assert regions._seen == 1                # nothing after the error ran
    assert not any(t.name == 'region tracker' for t in threading.enumerate())


def test_an_error_on_the_thread_outranks_the_callers(frames):
    # a failing tracker is a bug; the caller's error may be one it would report and go on
    regions = PairRegions(RegionSettings(settings_for('motion', 3)))
    with pytest.raises(cv2.error) as raised:
        with RegionsThread(regions, claim_core=lambda: True) as threaded:
            threaded.frame(np.zeros((4, 4, 7), np.uint8))
            try:
                feed_until_it_fails(threaded, frames[1])
            except cv2.error:
                raise KeyError('the caller') from None
    assert isinstance(raised.value.__context__, KeyError)


def test_a_callers_error_drops_the_queued_calls_and_ends_the_thread(frames):
    regions = PairRegions(RegionSettings(settings_for('motion', 3)))
    with pytest.raises(KeyError, match='the caller'):
        # room for every frame: all are queued long before the thread could track them
        with RegionsThread(regions, claim_core=lambda: True,
                           frames_ahead=len(frames)) as threaded:
            for frame in frames:
                threaded.frame(frame)
            raise KeyError('the caller')
    assert not any(t.name == 'region tracker' for t in threading.enumerate())
    assert regions._seen < len(frames)     # the calls still queued were dropped
