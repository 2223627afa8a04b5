"""Unsupervised region proposals for the Region Tracker: candidates, filtered and ranked.

Two rankings (``ProposalSettings.ranking``; the pairs writer's ``--proposal-ranking``):

``motion`` (the pairs writer's default): regions that move against their surroundings first.

* **Candidates**: OpenCV's selective search with a *single* strategy (one graph segmentation
  of the HSV image, ``k = 200``, grouped by colour, size and fill, without the texture cue;
  about 10x cheaper than the fast mode's eight strategies on twice the pixels) on the frame
  shrunk to about ``MOTION_PIXELS`` pixels (96 x 72 worth, :func:`settings_for`), plus
  *motion blobs*: the connected regions of the dense optical flow (DIS, ultrafast preset,
  from the frame to the next one) whose motion differs from the frame's median motion (the
  camera's, to first order) by more than ``BLOB_MOTION`` px, each boxed (no margin: the
  coarse flow already spills a few pixels past a mover's edges). A walking person is a
  candidate even where the segmentation merges them with the street.
* **Score**: ``m / (m + MOTION_SCALE) * (MOTION_FLOOR + s) + STATIC_WEIGHT * s``, where
  ``m`` is the *motion contrast* of the box: the distance (px per frame) from the mean flow
  inside the box to the mean flow of the ring around it (the same ring as the colour
  contrast) or to the camera's motion (the median flow), whichever is smaller (a still box
  next to a mover has the mover in its ring), each pixel's flow weighted by its texture
  (:func:`flow_weight`: a plain area's flow is unconstrained, and the ``FLOW_BORDER`` px
  along the frame's edges, where content enters or leaves, are not trusted). A region that
  moves with its surroundings (static background under a still or a panning camera) has
  ``m`` near 0; a box tight on a moving object has ``m`` near the object's speed relative
  to the background, and a box much larger than the object gets a diluted ``m``. ``s`` is
  the static cue in [0, 1]: the colour contrast below (the detector's score with
  ``--detector``). The product favours boxes that both move and stand out, i.e. tight on
  the moving object rather than cutting through it (such a box moves as much, but its
  colour contrast is low); the small last term orders the regions of a still scene.
* **Filter**: a candidate *moves* when ``m >= STILL_MOTION`` and at least ``MOVING_SHARE`` of
  its pixels are moving pixels (those of the motion blobs, before grouping); a large
  background box around a small walker is not moving. When some candidate moves, the still
  ones are dropped: a pair then keeps fewer than ``count`` regions rather than filling up
  with background whose two crops differ only by augmentation. A still scene keeps its
  still regions.

``contrast`` (the writer's behaviour before ``motion``, and the default of a single frame,
which has no motion): selective search in "fast" mode (Uijlings et al. 2013: graph
segmentations of the HSV and Lab images at two scales, grouped hierarchically by colour,
texture, size and fill similarity; ~90 ms a frame on one core here) on the frame shrunk to
about ``PROPOSAL_PIXELS`` pixels (128 x 96 worth), ranked by the colour contrast alone.

**Colour contrast** (the "colour contrast" objectness cue of Alexe et al., 2012): the
chi-square distance, in [0, 1], between the colour histogram inside the box and the one of
the ring around it (each side widened by ``RING`` of the box's side, cut at the frame's
edge), with RGB quantised to 4 x 4 x 4 bins, computed on the shrunk frame. An object that
stands out from its surroundings scores high; a box cutting through a uniform region or
straddling an object's edge scores low. Detections of a user's model
(:mod:`writers.detector`) replace selective search and the motion blobs as candidates.

**Filters.** A candidate is kept when both its sides are at least ``min_side`` of the frame's
shorter side, it covers at most ``max_area`` of the frame (a box that is nearly the whole
frame adds nothing to full-frame pairs) and its aspect ratio (long side / short side) is at
most ``max_aspect``. Then greedy non-maximum suppression (IoU above ``nms_iou`` with a
better box drops a box) and the best ``count`` boxes are kept. Equal scores are broken by
the box coordinates, so the result does not depend on selective search's random order.
"""
import math
from dataclasses import dataclass

import cv2
import numpy as np

from writers.boxes import mask_cover, nms, scale_boxes
from writers.proposal_kernels import colour_integral, moving_mask, weighted_flow_integral

RANKINGS = ('motion', 'contrast')
PROPOSAL_PIXELS = 128 * 96
RING = 0.25               # ring width around a box, as a fraction of the box's side
COLOUR_LEVELS = 4         # per RGB channel: 64 histogram bins
SINGLE_STRATEGY_K = 200   # graph segmentation scale of the single-strategy selective search
SINGLE_SIGMA = 0.8        # its Gaussian smoothing (OpenCV's default)
SINGLE_MIN_SIZE = 20      # its smallest segment, px of the shrunk frame
MOTION_PIXELS = 96 * 72   # the shrunk frame's pixels for the motion ranking's candidates
MOTION_SCALE = 1.0        # px per frame of motion contrast that makes the motion term 0.5
MOTION_FLOOR = 0.25       # the static cue's floor in the motion term: a plain mover counts
STATIC_WEIGHT = 0.05      # weight of the static cue alone (orders regions of a still scene)
BLOB_MOTION = 0.5         # px per frame away from the median motion: a moving pixel
MAX_BLOBS = 16            # largest motion blobs kept as candidates
STILL_MOTION = 0.3        # px per frame of motion contrast below which a region is still
MOVING_SHARE = 0.2        # share of moving pixels below which a region is mostly still
FLOW_BORDER = 8           # px along the frame's edges where the flow is not trusted
TEXTURE = 0.002           # structure-tensor eigenvalue (grey levels in [0, 1]) of full trust
TRUSTED = 0.25            # flow weight above which a pixel may count as moving


@dataclass(frozen=True)
class ProposalSettings:
    """How many proposals to keep, which candidates qualify and how they are ranked (see the
    module docstring)."""
    count: int = 16
    min_side: float = 0.1     # fraction of the frame's shorter side
    max_area: float = 0.7     # fraction of the frame's area
    max_aspect: float = 4.0
    nms_iou: float = 0.5
    pixels: int = PROPOSAL_PIXELS
    ranking: str = 'contrast'     # one of RANKINGS; motion needs the flow to the next frame


def settings_for(ranking, count=ProposalSettings.count):
    """The settings of a ranking: its shrunk frame's pixels (``MOTION_PIXELS`` for motion,
    whose candidates also come from the flow; ``PROPOSAL_PIXELS`` for contrast)."""
    pixels = MOTION_PIXELS if ranking == 'motion' else PROPOSAL_PIXELS
    return ProposalSettings(count=count, ranking=ranking, pixels=pixels)


def shrink(rgb, pixels):
    """``rgb`` resized (area interpolation) to about ``pixels`` pixels; never enlarged."""
    height, width = rgb.shape[:2]
    scale = min(1.0, (pixels / (height * width)) ** 0.5)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def selective_search(rgb, single=False):
    """Selective search boxes of an RGB image, ``N x 4`` (x0, y0, x1, y1): "fast" mode, or
    with ``single`` one graph segmentation of the HSV image grouped by colour, size and fill
    (no texture: the texture histograms, Gaussian derivatives in 8 directions, cost more
    than the rest together)."""
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if single:
        segmentation = cv2.ximgproc.segmentation
        search.addImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))
        search.addGraphSegmentation(segmentation.createGraphSegmentation(
            SINGLE_SIGMA, SINGLE_STRATEGY_K, SINGLE_MIN_SIZE))
        search.addStrategy(segmentation.createSelectiveSearchSegmentationStrategyMultiple(
            segmentation.createSelectiveSearchSegmentationStrategyColor(),
            segmentation.createSelectiveSearchSegmentationStrategySize(),
            segmentation.createSelectiveSearchSegmentationStrategyFill()))
    else:
        search.setBaseImage(bgr)
        search.switchToSelectiveSearchFast()
    rects = np.asarray(search.process(), np.float64).reshape(-1, 4)
    rects[:, 2:] += rects[:, :2]
    return rects


def colour_contrast(rgb, boxes):
    """Centre-surround colour contrast (chi-square distance in [0, 1]) of each box in ``rgb``
    (box coordinates in ``rgb``'s pixels, rounded to whole pixels)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    # integral histogram: any box's histogram from four lookups, all boxes at once
    integral = colour_integral(np.ascontiguousarray(rgb), COLOUR_LEVELS)
    inside = _histograms(integral, boxes)
    around = _histograms(integral, _ring(boxes)) - inside
    p = inside / np.maximum(inside.sum(1, keepdims=True), 1)
    q = around / np.maximum(around.sum(1, keepdims=True), 1)
    total = p + q
    distance = 0.5 * np.sum((p - q) ** 2 / np.where(total > 0, total, 1), axis=1)
    # a box as large as the frame has no ring: no contrast to speak of
    return np.where((inside.sum(1) > 0) & (around.sum(1) > 0), distance, 0.0)


def _ring(boxes):
    """Each box widened by ``RING`` of its side on every side (its outer edge of the ring)."""
    width_height = boxes[:, 2:] - boxes[:, :2]
    return boxes + RING * np.concatenate([-width_height, width_height], axis=1)


def dense_flow(gray, next_gray):
    """Dense optical flow (OpenCV's DIS, ultrafast preset) from one greyscale frame to the
    next, ``H x W x 2`` float32 px (about 1-2 ms at 320 x 180). Frames that DIS cannot take
    (:func:`dis_safe_size`) are padded by repeating their last row and column."""
    height, width = gray.shape
    safe_height, safe_width = dis_safe_size(height, width)
    if (safe_height, safe_width) != (height, width):
        def pad(image):
            return cv2.copyMakeBorder(image, 0, safe_height - height, 0, safe_width - width,
                                      cv2.BORDER_REPLICATE)
        return dense_flow(pad(gray), pad(next_gray))[:height, :width]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    return dis.calc(np.ascontiguousarray(gray), np.ascontiguousarray(next_gray), None)


def dis_safe_size(height, width):
    """The smallest ``(height, width)`` at least the given one that OpenCV's DIS (ultrafast:
    8 px patches, finest scale 2) takes. Where its preset's scales do not fit the frame, DIS
    picks its coarsest scale from the width alone, and a frame then too short for one patch
    at that scale crashes the process (OpenCV 4.x-5.1: 80 x 27 segfaults); frames under 12 px
    wide or 5 px high raise. Sizes the preset fits are returned as they are."""
    preset = min(int(math.log(max(height, width) / 32, 2) + 0.5),
                 int(math.log(min(height, width) / 8, 2)))
    if preset >= 2:
        return height, width
    width = max(width, 12)
    scale = max(0, math.floor(math.log2(2 * width / 40)))   # DIS's autoSelectCoarsestScale
    return max(height, 8 << scale), width


def flow_weight(gray):
    """How much each pixel's flow is trusted, in [0, 1]: its texture (the smaller eigenvalue
    of the 3 x 3 structure tensor over ``TEXTURE``), 0 in the ``FLOW_BORDER`` px along the
    frame's edges. Flow in a plain area or where content enters the frame is unconstrained
    (the aperture problem): under a moving camera it would pass for motion."""
    texture = cv2.cornerMinEigenVal(np.ascontiguousarray(gray), 3)
    weight = np.zeros(gray.shape[:2], np.float32)
    inner = (slice(FLOW_BORDER, -FLOW_BORDER),) * 2
    weight[inner] = np.minimum(texture[inner] / TEXTURE, 1)
    return weight


def camera_motion(flow):
    """The frame's median flow: the camera's motion, to first order (every 4th pixel of
    every 4th row is plenty, at a 16th of the cost)."""
    return np.median(flow[::4, ::4].reshape(-1, 2), axis=0)


def motion_contrast(flow, weight, boxes):
    """How much each box moves against its surroundings, px per frame: the distance from the
    mean flow inside it to the mean flow of the ring around it, or to the camera's motion
    (:func:`camera_motion`) when that is smaller; means weighted by :func:`flow_weight`. The
    smaller of the two: a still box whose ring holds a moving object is not moving, and
    neither is a box that moves like its ring under a zooming camera. 0 for boxes without a
    ring or without trusted pixels; box coordinates in ``flow``'s pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    # the sums of the flow and of the counted pixels in any box from four lookups each
    integral = weighted_flow_integral(np.ascontiguousarray(flow), np.ascontiguousarray(weight))
    inside = _histograms(integral, boxes)
    around = _histograms(integral, _ring(boxes)) - inside
    counted = (inside[:, 2] > 1) & (around[:, 2] > 1)
    mean_inside = inside[:, :2] / np.maximum(inside[:, 2:], 1)
    mean_around = around[:, :2] / np.maximum(around[:, 2:], 1)
    against = np.minimum(np.linalg.norm(mean_inside - mean_around, axis=1),
                         np.linalg.norm(mean_inside - camera_motion(flow), axis=1))
    return np.where(counted, against, 0.0)


def moving_pixels(flow, weight):
    """The pixels of trusted flow (``weight`` above ``TRUSTED``) that differs from the
    camera's motion by more than ``BLOB_MOTION`` px, a boolean mask."""
    return moving_mask(np.ascontiguousarray(flow), np.ascontiguousarray(weight),
                       camera_motion(flow), BLOB_MOTION, TRUSTED)


def motion_blobs(moving, min_side):
    """Boxes around the connected regions of the :func:`moving_pixels` mask ``moving``; the
    ``MAX_BLOBS`` largest whose sides reach ``min_side`` px."""
    # opening drops isolated noisy pixels, closing joins the parts of one body (limbs, torso)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, kernel, iterations=2)
    _, _, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    stats = stats[1:]                               # label 0 is the still part
    stats = stats[np.argsort(-stats[:, cv2.CC_STAT_AREA], kind='stable')][:MAX_BLOBS]
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    boxes = np.stack([x, y, x + stats[:, cv2.CC_STAT_WIDTH], y + stats[:, cv2.CC_STAT_HEIGHT]],
                     1).astype(np.float64).reshape(-1, 4)
    return boxes[np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_side]


def motion_scores(flow, weight, moving, boxes, static):
    """The motion ranking's scores of ``boxes`` (in ``flow``'s pixels) given their static
    cue in [0, 1] and the :func:`moving_pixels` mask, and the mask of the boxes kept: all of
    them in a still scene, else only the moving ones (see the module docstring)."""
    contrast = motion_contrast(flow, weight, boxes)
    static = np.asarray(static, np.float64)
    scores = (contrast / (contrast + MOTION_SCALE) * (MOTION_FLOOR + static)
              + STATIC_WEIGHT * static)
    kept = (contrast >= STILL_MOTION) & (mask_cover(boxes, moving) >= MOVING_SHARE)
    return scores, kept if kept.any() else np.ones(len(kept), bool)


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


def propose(rgb, settings=ProposalSettings(), detector=None, flow=None):
    """The ranked proposals of an RGB frame: ``(boxes N x 4, scores N)`` in ``rgb``'s pixels,
    best first, ``N <= settings.count`` (0 when no candidate qualifies, e.g. a uniform frame).

    ``detector`` (a :class:`writers.detector.Detector`) replaces selective search. The
    ``motion`` ranking needs ``flow``: :func:`dense_flow` from ``rgb`` (greyscale) to the
    next frame, same size.
    """
    if settings.ranking not in RANKINGS:
        raise ValueError(f'unknown ranking {settings.ranking!r} (one of {RANKINGS})')
    by_motion = settings.ranking == 'motion'
    if by_motion and (flow is None or flow.shape[:2] != rgb.shape[:2]):
        raise ValueError('the motion ranking needs the flow to the next frame, same size')
    height, width = rgb.shape[:2]
    if by_motion:
        weight = flow_weight(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
        moving = moving_pixels(flow, weight)
    if detector is not None:
        boxes, scores = detector(rgb)
        if by_motion:
            scores, kept = motion_scores(flow, weight, moving, boxes, scores)
            boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4)[kept], scores[kept]
        return rank(boxes, scores, width, height, settings)
    small = shrink(rgb, settings.pixels)
    sx, sy = width / small.shape[1], height / small.shape[0]
    found = selective_search(small, single=by_motion)
    if not by_motion:
        candidates = scale_boxes(found, sx, sy)
        keep = plausible(candidates, width, height, settings)
        scores = colour_contrast(small, found[keep])
        return rank(candidates[keep], scores, width, height, settings)
    candidates = np.concatenate([scale_boxes(found, sx, sy),
                                 motion_blobs(moving, settings.min_side * min(width, height))])
    candidates = candidates[plausible(candidates, width, height, settings)]
    static = colour_contrast(small, scale_boxes(candidates, 1 / sx, 1 / sy))
    scores, kept = motion_scores(flow, weight, moving, candidates, static)
    return rank(candidates[kept], scores[kept], width, height, settings)
