"""Unsupervised region proposals for the Region Tracker: selective search, filtered and ranked.

**Candidates.** OpenCV's selective search (``cv2.ximgproc.segmentation``, the "fast" mode of
Uijlings et al. 2013: graph segmentations of the HSV and Lab images at two scales, grouped
hierarchically by colour, texture, size and fill similarity) runs on the frame shrunk
(area interpolation) to about ``PROPOSAL_PIXELS`` pixels (128 x 96 worth, whatever the
aspect): ~50-60 ms a frame on one core, and the boxes come back scaled to the frame given.
Alternatively the candidates come from a user's detection model (:mod:`writers.detector`).

**Filters.** A candidate is kept when both its sides are at least ``min_side`` of the frame's
shorter side, it covers at most ``max_area`` of the frame (a box that is nearly the whole
frame adds nothing to full-frame pairs) and its aspect ratio (long side / short side) is at
most ``max_aspect``.

**Ranking.** Selective search's own order is random by design, so we rank by a
*centre-surround colour contrast* (the "colour contrast" objectness cue of Alexe et al.,
2012): the chi-square distance, in [0, 1], between the colour histogram inside the box and
the one of the ring around it (each side widened by ``RING`` of the box's side, cut at the
frame's edge), with RGB quantised to 4 x 4 x 4 bins, computed on the shrunk frame. An
object that stands out from its surroundings scores high; a box cutting through a uniform
region or straddling an object's edge scores low. Detector candidates are ranked by the
detector's score instead. Then greedy non-maximum suppression (IoU above ``nms_iou`` with a
better box drops a box) and the best ``count`` boxes are kept. Equal scores are broken by
the box coordinates, so the result does not depend on selective search's random order.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from writers.boxes import nms, scale_boxes

PROPOSAL_PIXELS = 128 * 96
RING = 0.25               # ring width around a box, as a fraction of the box's side
COLOUR_LEVELS = 4         # per RGB channel: 64 histogram bins


@dataclass(frozen=True)
class ProposalSettings:
    """How many proposals to keep and which candidates qualify (see the module docstring)."""
    count: int = 16
    min_side: float = 0.1     # fraction of the frame's shorter side
    max_area: float = 0.7     # fraction of the frame's area
    max_aspect: float = 4.0
    nms_iou: float = 0.5
    pixels: int = PROPOSAL_PIXELS


def shrink(rgb, pixels):
    """``rgb`` resized (area interpolation) to about ``pixels`` pixels; never enlarged."""
    height, width = rgb.shape[:2]
    scale = min(1.0, (pixels / (height * width)) ** 0.5)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def selective_search(rgb):
    """Selective search ("fast" mode) boxes of an RGB image, ``N x 4`` (x0, y0, x1, y1)."""
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    search.switchToSelectiveSearchFast()
    rects = np.asarray(search.process(), np.float64).reshape(-1, 4)
    rects[:, 2:] += rects[:, :2]
    return rects


def colour_contrast(rgb, boxes):
    """Centre-surround colour contrast (chi-square distance in [0, 1]) of each box in ``rgb``
    (box coordinates in ``rgb``'s pixels, rounded to whole pixels)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    levels = (rgb.astype(np.int32) * COLOUR_LEVELS) >> 8
    labels = (levels[..., 0] * COLOUR_LEVELS + levels[..., 1]) * COLOUR_LEVELS + levels[..., 2]
    # integral histogram: any box's histogram from four lookups, all boxes at once
    one_hot = (labels[..., None] == np.arange(COLOUR_LEVELS ** 3)).view(np.uint8)
    integral = cv2.integral(one_hot, sdepth=cv2.CV_32S)
    width_height = boxes[:, 2:] - boxes[:, :2]
    ring = RING * np.concatenate([-width_height, width_height], axis=1)
    inside = _histograms(integral, boxes)
    around = _histograms(integral, boxes + ring) - inside
    p = inside / np.maximum(inside.sum(1, keepdims=True), 1)
    q = around / np.maximum(around.sum(1, keepdims=True), 1)
    total = p + q
    distance = 0.5 * np.sum((p - q) ** 2 / np.where(total > 0, total, 1), axis=1)
    # a box as large as the frame has no ring: no contrast to speak of
    return np.where((inside.sum(1) > 0) & (around.sum(1) > 0), distance, 0.0)


def _histograms(integral, boxes):
    """Histograms of the whole pixels of ``boxes`` (rounded, cut to the image)."""
    height, width = integral.shape[0] - 1, integral.shape[1] - 1
    x = np.clip(np.round(boxes[:, 0::2]), 0, width).astype(np.int64)
    y = np.clip(np.round(boxes[:, 1::2]), 0, height).astype(np.int64)
    return (integral[y[:, 1], x[:, 1]] - integral[y[:, 0], x[:, 1]]
            - integral[y[:, 1], x[:, 0]] + integral[y[:, 0], x[:, 0]]).astype(np.float64)


def plausible(boxes, width, height, settings):
    """Mask of the boxes that pass the size, area and aspect filters in a ``width x height``
    frame (non-finite and inverted boxes never pass)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    finite = np.all(np.isfinite(boxes), axis=1)
    w = np.where(finite, boxes[:, 2] - boxes[:, 0], 0)
    h = np.where(finite, boxes[:, 3] - boxes[:, 1], 0)
    short, long = np.minimum(w, h), np.maximum(w, h)
    return (finite & (short >= settings.min_side * min(width, height))
            & (w * h <= settings.max_area * width * height)
            & (long <= settings.max_aspect * np.where(short > 0, short, np.inf)))


def rank(boxes, scores, width, height, settings):
    """Filter, non-maximum-suppress and keep the best ``settings.count`` of scored boxes:
    ``(boxes, scores)``, best first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64)
    keep = plausible(boxes, width, height, settings)
    boxes, scores = boxes[keep], scores[keep]
    # deterministic order whatever the candidates' order: score, then coordinates
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))
    boxes, scores = boxes[order], scores[order]
    kept = nms(boxes, scores, settings.nms_iou)[:settings.count]
    return boxes[kept], scores[kept]


def propose(rgb, settings=ProposalSettings(), detector=None):
    """The ranked proposals of an RGB frame: ``(boxes N x 4, scores N)`` in ``rgb``'s pixels,
    best first, ``N <= settings.count`` (0 when no candidate qualifies, e.g. a uniform frame).

    ``detector`` (a :class:`writers.detector.Detector`) replaces selective search.
    """
    height, width = rgb.shape[:2]
    if detector is not None:
        boxes, scores = detector(rgb)
        return rank(boxes, scores, width, height, settings)
    small = shrink(rgb, settings.pixels)
    sx, sy = width / small.shape[1], height / small.shape[0]
    candidates = selective_search(small)
    keep = plausible(scale_boxes(candidates, sx, sy), width, height, settings)
    candidates = candidates[keep]
    scores = colour_contrast(small, candidates)
    boxes, scores = rank(scale_boxes(candidates, sx, sy), scores, width, height, settings)
    return boxes, scores
