"""Antialiased bilinear resize of a crop with a fused horizontal flip, in Numba.

Same filter as ``torchvision.transforms.v2.functional.resized_crop(..., antialias=True)``
(and PIL's BILINEAR): a triangle kernel stretched by the downscale factor, so views are not
bought with aliasing. Separable; the vertical pass runs first because its inner loop walks a
contiguous row span (vectorises), leaving the strided horizontal pass only ``out_h`` rows. The
flip is free: the horizontal pass writes columns right to left.

Crop boxes are floats so that a JPEG decoded at 1/2, 1/4 or 1/8 scale (TurboJPEG's DCT
scaling) can be cropped with the box scaled down exactly; for integer boxes the weights equal
torchvision's.
"""
import math

import numpy as np
from numba import njit


@njit(inline="always")
def filter_weights(start, length, out_size, limit_lo, limit_hi, max_taps, first, count, weights):
    """Fill first[o], count[o] and weights[o, :] for resizing [start, start+length) to out_size samples.

    Taps are clamped to [limit_lo, limit_hi) (the crop's pixel range), as in torchvision's
    ``_upsample_bilinear2d_aa`` which only sees the cropped tensor.
    """
    scale = length / out_size
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    for o in range(out_size):
        center = start + scale * (o + 0.5)
        lo = max(int(math.floor(center - support + 0.5)), limit_lo)
        hi = min(int(math.floor(center + support + 0.5)), limit_hi)
        n = min(hi - lo, max_taps)
        total = 0.0
        for t in range(max_taps):
            w = 0.0
            if t < n:
                w = 1.0 - abs((lo + t - center + 0.5) * inv)
                if w < 0.0:
                    w = 0.0
            weights[o, t] = w
            total += w
        if total > 0.0:
            for t in range(max_taps):
                weights[o, t] /= total
        first[o] = lo
        count[o] = n


@njit(inline="always")
def max_taps_for(length, out_size):
    scale = length / out_size
    support = scale if scale >= 1.0 else 1.0
    return int(math.ceil(2.0 * support)) + 2


@njit(fastmath=True, nogil=True)
def resize_crop_flip(src, top, left, height, width, flip, dst, row_buffer):
    """Resize src[top:top+height, left:left+width] (float box) into dst (out_h, out_w, 3) uint8.

    ``row_buffer`` is float32 scratch of at least out_h * src.shape[1] * 3 elements.
    """
    out_h, out_w = dst.shape[0], dst.shape[1]
    row_lo = int(math.floor(top))
    row_hi = min(int(math.ceil(top + height)), src.shape[0])
    col_lo = int(math.floor(left))
    col_hi = min(int(math.ceil(left + width)), src.shape[1])

    taps_y = max_taps_for(height, out_h)
    first_y = np.empty(out_h, np.int64)
    count_y = np.empty(out_h, np.int64)
    w_y = np.empty((out_h, taps_y), np.float32)
    filter_weights(top, height, out_h, row_lo, row_hi, taps_y, first_y, count_y, w_y)
    taps_x = max_taps_for(width, out_w)
    first_x = np.empty(out_w, np.int64)
    count_x = np.empty(out_w, np.int64)
    w_x = np.empty((out_w, taps_x), np.float32)
    filter_weights(left, width, out_w, col_lo, col_hi, taps_x, first_x, count_x, w_x)

    span = (col_hi - col_lo) * 3
    tmp = row_buffer[:out_h * span].reshape(out_h, span)
    flat = src.reshape(src.shape[0], src.shape[1] * 3)
    c0 = col_lo * 3
    for o in range(out_h):
        acc = tmp[o]
        acc[:] = 0.0
        y0 = first_y[o]
        for t in range(count_y[o]):
            w = w_y[o, t]
            row = flat[y0 + t, c0:c0 + span]
            for k in range(span):
                acc[k] += w * row[k]
    for o in range(out_h):
        acc = tmp[o]
        out_row = dst[o]
        for x in range(out_w):
            base = (first_x[x] - col_lo) * 3
            r = np.float32(0.0)
            g = np.float32(0.0)
            b = np.float32(0.0)
            for t in range(count_x[x]):
                w = w_x[x, t]
                p = base + 3 * t
                r += w * acc[p]
                g += w * acc[p + 1]
                b += w * acc[p + 2]
            xo = out_w - 1 - x if flip else x
            out_row[xo, 0] = np.uint8(min(max(r + 0.5, 0.0), 255.0))
            out_row[xo, 1] = np.uint8(min(max(g + 0.5, 0.0), 255.0))
            out_row[xo, 2] = np.uint8(min(max(b + 0.5, 0.0), 255.0))
