"""Region proposals: planted real objects are found, the ranking and filters behave as
documented (box geometry: test_boxes.py; detector proposals: test_detector.py)."""
import numpy as np
import pytest

from writers.boxes import box_iou
from writers.proposals import (
    ProposalSettings,
    colour_contrast,
    plausible,
    propose,
    rank,
    selective_search,
)


@pytest.mark.parametrize('background', ['plain', 'coffee'])
def test_planted_objects_are_recovered(background, planted_objects_frame):
    frame, truth = planted_objects_frame(background)
    boxes, scores = propose(frame, ProposalSettings(count=16))
    assert 0 < len(boxes) <= 16
    assert np.all(np.diff(scores) <= 0)                       # best first
    best = box_iou(truth, boxes).max(axis=1)
    assert np.sum(best >= 0.5) >= 3, best                     # most of the four objects
    assert np.all((boxes[:, :2] >= 0) & (boxes[:, 2:] <= [320, 240]))


def test_uniform_frame_gives_no_proposal():
    boxes, scores = propose(np.full((120, 160, 3), 90, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_contrast_peaks_on_the_object(planted_objects_frame):
    frame, truth = planted_objects_frame('plain')
    box = truth[0]
    width, height = box[2:] - box[:2]
    variants = [box, box + [-width / 3, 0, -width / 3, 0], box + [0, 0, width / 2, height / 2],
                box + [width / 4, height / 4, -width / 4, -height / 4]]
    scores = colour_contrast(frame, np.array(variants))
    assert scores[0] > 0.8 and np.argmax(scores) == 0, scores
    whole = colour_contrast(frame, np.array([[0, 0, 320, 240]]))
    assert whole[0] == 0                                      # no ring: no contrast


def test_rank_filters_and_order_do_not_depend_on_input_order():
    settings = ProposalSettings(count=3, min_side=0.1, max_area=0.5, max_aspect=3, nms_iou=0.5)
    boxes = np.array([[10, 10, 60, 60],      # ok
                      [12, 10, 62, 60],      # overlaps the first (IoU 0.92): suppressed
                      [0, 0, 5, 40],         # a side below 0.1 * 100
                      [0, 0, 190, 90],       # more than half the frame
                      [100, 10, 190, 25],    # aspect 6
                      [120, 40, 160, 80],    # ok
                      [20, 60, 60, 95],      # ok
                      [np.nan, 0, 10, 10]])  # not finite
    scores = np.array([0.9, 0.95, 1, 1, 1, 0.5, 0.5, 1])
    assert plausible(boxes, 200, 100, settings).tolist() == [True, True, False, False, False,
                                                              True, True, False]
    kept, kept_scores = rank(boxes, scores, 200, 100, settings)
    np.testing.assert_array_equal(kept, boxes[[1, 6, 5]])   # equal scores: by coordinates
    order = np.random.default_rng(0).permutation(len(boxes))
    again, _ = rank(boxes[order], scores[order], 200, 100, settings)
    np.testing.assert_array_equal(again, kept)


def test_selective_search_candidates_are_reproducible_sets(planted_objects_frame):
    frame, _ = planted_objects_frame('coffee')
    first, second = selective_search(frame[::2, ::2]), selective_search(frame[::2, ::2])
    assert set(map(tuple, first)) == set(map(tuple, second))   # (its order is random)
    first_boxes, _ = propose(frame)
    np.testing.assert_array_equal(first_boxes, propose(frame)[0])
