"""writers/boxes.py: IoU and NMS agree with torchvision; areas, clipping to the frame, the visible
part, scaling and GOT-10k's x, y, w, h rows follow the exclusive-corner convention."""
import numpy as np

from writers.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    mask_cover,
    nms,
    scale_boxes,
    visible_fraction,
    xywh_to_xyxy,
)


def test_geometry_matches_torchvision():
    import torch
    from torchvision.ops import box_iou as tv_iou
    from torchvision.ops import nms as tv_nms

    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 100, (60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (60, 2))], 1)
    scores = rng.permutation(60) / 60.0                      # distinct: one right answer
    np.testing.assert_allclose(box_iou(boxes, boxes[:7]),
                               tv_iou(torch.from_numpy(boxes), torch.from_numpy(boxes[:7])))
    for threshold in (0.3, 0.5, 0.7):
        expected = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
        np.testing.assert_array_equal(nms(boxes, scores, threshold), expected.numpy())


def test_empty_boxes_have_no_area_and_no_overlap():
    boxes = [[0, 0, 10, 5], [4, 4, 4, 9], [6, 6, 2, 2]]      # a box, an empty and an inverted
    np.testing.assert_array_equal(box_area(boxes), [50, 0, 0])
    iou = box_iou(boxes, boxes)
    assert iou[0, 0] == 1 and iou[1, 1] == iou[2, 2] == 0      # an empty union gives 0
    np.testing.assert_allclose(box_iou([0, 0, 10, 10], [5, 0, 15, 10]), [[50 / 150]])


def test_nms_keeps_the_best_of_overlapping_boxes_and_breaks_ties_by_index():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]]
    np.testing.assert_array_equal(nms(boxes, [0.5, 0.9, 0.1, 0.9], 0.5), [1, 2])
    # equal scores: the lower index is kept; IoU exactly at the threshold is not dropped
    np.testing.assert_array_equal(nms([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], 0.5), [0])
    np.testing.assert_array_equal(nms([[0, 0, 10, 10], [5, 0, 15, 10]], [1, 1], 1 / 3), [0, 1])


def test_clip_visible_fraction_scale_and_xywh():
    boxes = np.array([[-10, 0, 10, 20], [90, 90, 110, 100], [20, 30, 40, 50]], float)
    np.testing.assert_array_equal(clip_boxes(boxes, 100, 95),
                                  [[0, 0, 10, 20], [90, 90, 100, 95], [20, 30, 40, 50]])
    assert boxes[0, 0] == -10                                 # the input is not changed
    np.testing.assert_allclose(visible_fraction(boxes, 100, 95), [0.5, 50 / 200, 1.0])
    assert visible_fraction([[5, 5, 5, 9]], 100, 100)[0] == 0
    np.testing.assert_array_equal(scale_boxes([[10, 20, 30, 40]], 0.5, 2),
                                  [[5, 40, 15, 80]])
    rows = np.array([[10, 5, 30, 20.5]])
    np.testing.assert_array_equal(xywh_to_xyxy(rows), [[10, 5, 40, 25.5]])
    assert rows[0, 2] == 30


def test_mask_cover_counts_whole_pixels():
    mask = np.zeros((10, 20), bool)
    mask[2:6, 4:12] = True                                  # 32 pixels
    boxes = np.array([[4, 2, 12, 6],        # exactly the mask
                      [0, 0, 20, 10],       # the whole frame: 32 of 200
                      [4, 2, 8, 10],        # half its columns... 16 of 32
                      [12, 6, 20, 10],      # beside it
                      [-5, -5, 8.4, 6.2],   # cut to the frame and rounded: 0..8 x 0..6
                      [3, 3, 3, 9]])        # no pixels
    np.testing.assert_allclose(mask_cover(boxes, mask), [1, 0.16, 0.5, 0, 16 / 48, 0])
