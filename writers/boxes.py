"""Box geometry shared by the region proposals, the tracker, the pair inspector and the
tracking benchmark.

A box is ``(x0, y0, x1, y1)`` in pixels, float, with ``x1``/``y1`` exclusive: it covers the
continuous rectangle ``[x0, x1) x [y0, y1)``, so its width is ``x1 - x0``. Arrays of boxes
are ``N x 4``.
"""
import cv2
import numpy as np


def box_area(boxes):
    """Areas of ``N x 4`` boxes (0 for empty or inverted ones)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(first, second):
    """``len(first) x len(second)`` intersection over union (0 where a union is empty)."""
    a = np.asarray(first, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(second, np.float64).reshape(-1, 4)[None]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = box_area(first)[:, None] + box_area(second)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression: indices of the kept boxes, best score first (ties:
    lower index first). A box is dropped when its IoU with a kept one exceeds the threshold."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))
    overlaps = box_iou(boxes, boxes)
    kept = []
    suppressed = np.zeros(len(order), bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= overlaps[i] > iou_threshold
    return np.asarray(kept, np.int64)


def clip_boxes(boxes, width, height):
    """Boxes cut to the frame ``[0, width) x [0, height)``."""
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return boxes


def visible_fraction(boxes, width, height):
    """The part of each box's area that lies inside the frame (0 for empty boxes)."""
    area = box_area(boxes)
    inside = box_area(clip_boxes(boxes, width, height))
    return np.where(area > 0, inside / np.where(area > 0, area, 1), 0.0)


def scale_boxes(boxes, sx, sy):
    """Boxes with x multiplied by ``sx`` and y by ``sy`` (one frame size to another)."""
    return np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])


def xywh_to_xyxy(boxes):
    """``x, y, w, h`` rows (GOT-10k ``groundtruth.txt``) to ``x0, y0, x1, y1``."""
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def mask_cover(boxes, mask):
    """The fraction of each box's whole pixels (coordinates rounded, cut to the mask) that are
    set in the boolean ``H x W`` ``mask``; 0 for boxes without pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    integral = cv2.integral(np.ascontiguousarray(mask, np.uint8), sdepth=cv2.CV_32S)
    height, width = mask.shape
    x = np.clip(np.round(boxes[:, 0::2]), 0, width).astype(np.int64)
    y = np.clip(np.round(boxes[:, 1::2]), 0, height).astype(np.int64)
    inside = (integral[y[:, 1], x[:, 1]] - integral[y[:, 0], x[:, 1]]
              - integral[y[:, 1], x[:, 0]] + integral[y[:, 0], x[:, 0]])
    pixels = (x[:, 1] - x[:, 0]) * (y[:, 1] - y[:, 0])
    return np.where(pixels > 0, inside / np.maximum(pixels, 1), 0.0)
