"""Which pairs a video gives: the grid of first frames, fixed gaps, and seeded gap draws that
depend on the video's path relative to SRC only."""
import os

from writers.pairing import PairSchedule, video_key


def pairs_of(schedule, frames):
    """``[(index_a, index_b)]`` as the pairs writer streams ``frames`` frames through it."""
    found = []
    for j in range(frames):
        if schedule.is_first(j):
            schedule.start(j)
        found.extend((a, j) for a in schedule.finish(j))
    return found


def test_fixed_gap_pairs_every_kth_frame():
    assert pairs_of(PairSchedule(4, 4, 4, 0, 0), 14) == [(0, 4), (4, 8), (8, 12)]


def test_gap_range_grid_draws_and_seeds():
    drawn = pairs_of(PairSchedule(3, 3, 7, seed=0, key=5), 200)
    assert all(a % 3 == 0 and 3 <= b - a <= 7 for a, b in drawn)
    assert len({b - a for a, b in drawn}) > 2
    assert {a for a, _ in drawn} >= set(range(0, 193, 3))     # every grid point whose pair fits
    assert pairs_of(PairSchedule(3, 3, 7, seed=0, key=5), 200) == drawn
    assert pairs_of(PairSchedule(3, 3, 7, seed=1, key=5), 200) != drawn
    assert pairs_of(PairSchedule(3, 3, 7, seed=0, key=6), 200) != drawn


def test_second_frame_known_before_it_arrives():
    schedule = PairSchedule(2, 3, 3, 0, 0)
    schedule.start(0)
    assert schedule.ends_a_pair(3) and not schedule.ends_a_pair(2)
    assert schedule.finish(3) == [0] and schedule.finish(3) == ()


def test_video_key_is_the_path_below_src():
    key = video_key(os.path.join('/data', 'src', 'a', 'v.mp4'), '/data/src')
    assert key == video_key(os.path.join('/elsewhere', 'a', 'v.mp4'), '/elsewhere')
    assert key != video_key(os.path.join('/data', 'src', 'b', 'v.mp4'), '/data/src')
