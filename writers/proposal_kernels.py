"""Compiled per-pixel passes of the proposal cues (:mod:`writers.proposals`).

Each returns exactly what the NumPy/OpenCV expression in its docstring returns (same values,
same summation order), in one pass over the frame without the temporaries: the 64-channel
one-hot image and its ``cv2.integral`` alone cost about 1.4 ms a frame at 96 x 72 worth of
pixels (OpenCV has no fast path for that many channels), several times all the proposal
cues' other arithmetic together.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def colour_integral(rgb, levels):
    """The integral histogram of ``rgb`` (``H x W x 3`` uint8) with each channel quantised to
    ``levels`` levels: int32 ``(H + 1) x (W + 1) x levels**3``, equal to
    ``cv2.integral(one_hot, sdepth=cv2.CV_32S)`` of the one-hot image of the bin labels
    ``((r * levels >> 8) * levels + (g * levels >> 8)) * levels + (b * levels >> 8)``."""
    height, width = rgb.shape[:2]
    bins = levels ** 3
    integral = np.zeros((height + 1, width + 1, bins), np.int32)
    row = np.zeros(bins, np.int32)
    for y in range(height):
        row[:] = 0
        for x in range(width):
            label = 0
            for c in range(3):
                label = label * levels + ((np.int32(rgb[y, x, c]) * levels) >> 8)
            row[label] += 1
            for b in range(bins):
                integral[y + 1, x + 1, b] = integral[y, x + 1, b] + row[b]
    return integral


@njit(cache=True, nogil=True)
def weighted_flow_integral(flow, weight):
    """float64 ``(H + 1) x (W + 1) x 3`` equal to ``cv2.integral(np.dstack([flow *
    weight[..., None], weight]), sdepth=cv2.CV_64F)`` (``flow`` ``H x W x 2`` and ``weight``
    ``H x W`` float32; the products rounded to float32 first, as NumPy does)."""
    height, width = weight.shape
    integral = np.zeros((height + 1, width + 1, 3), np.float64)
    for y in range(height):
        sum_x = sum_y = sum_w = 0.0
        for x in range(width):
            w = weight[y, x]
            sum_x += np.float64(np.float32(flow[y, x, 0] * w))
            sum_y += np.float64(np.float32(flow[y, x, 1] * w))
            sum_w += np.float64(w)
            integral[y + 1, x + 1, 0] = integral[y, x + 1, 0] + sum_x
            integral[y + 1, x + 1, 1] = integral[y, x + 1, 1] + sum_y
            integral[y + 1, x + 1, 2] = integral[y, x + 1, 2] + sum_w
    return integral


@njit(cache=True, nogil=True)
def moving_mask(flow, weight, camera, min_motion, min_weight):
    """bool ``H x W``: ``(np.hypot(*(flow - camera).transpose(2, 0, 1)) > min_motion) &
    (weight > min_weight)`` with ``flow`` ``H x W x 2``, ``weight`` ``H x W`` and ``camera``
    (2,) float32, the residual and its length in float32."""
    height, width = weight.shape
    moving = np.zeros((height, width), np.bool_)
    limit = np.float32(min_motion)
    for y in range(height):
        for x in range(width):
            if weight[y, x] > min_weight:
                dx = np.float32(flow[y, x, 0] - camera[0])
                dy = np.float32(flow[y, x, 1] - camera[1])
                moving[y, x] = np.float32(np.hypot(np.float64(dx), np.float64(dy))) > limit
    return moving
