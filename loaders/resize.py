"""Antialiased bilinear resize of a crop with a fused horizontal flip, in Numba.

Same filter as ``torchvision.transforms.v2.functional.resized_crop(..., antialias=True)``
(and PIL's BILINEAR): a triangle kernel stretched by the downscale factor, so views are not
bought with aliasing. Separable, in blocks of output rows; the vertical pass runs first because
its inner loop walks a contiguous row span (vectorises), and its result is stored column-major
so that the horizontal pass also sums contiguous runs instead of gathering a few interleaved
RGB taps per output pixel (that gather was two thirds of the resize). The flip is free: the
block is written back columns right to left.

Crop boxes are floats so that a JPEG decoded at 1/2, 1/4 or 1/8 scale (TurboJPEG's DCT
scaling) can be cropped with the box scaled down exactly; for integer boxes the weights equal
torchvision's.
"""
import math

import numpy as np
from numba import njit


@njit(inline='always')
def filter_weights(start, length, out_size, limit_lo, limit_hi, max_taps, first, count, weights):
    """Fill first[o], count[o] and weights[o, :] for resizing [start, start+length) to
    out_size samples.

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


@njit(inline='always')
def max_taps_for(length, out_size):
    scale = length / out_size
    support = scale if scale >= 1.0 else 1.0
    return int(math.ceil(2.0 * support)) + 2


ROW_BLOCK = 16  # output rows per block: both float blocks stay in L1/L2 cache


@njit(fastmath=True, nogil=True, cache=True)
def resize_crop_flip(src, top, left, height, width, flip, dst):
    """Resize src[top:top+height, left:left+width] (float box) into dst (out_h, out_w, 3) uint8.

    Per block of output rows: the vertical pass sums each output row's source rows over the
    contiguous crop span (vectorises) and stores the result column-major (one short run of
    ``3 * block`` floats per source column); the horizontal pass then sums whole source
    columns, again contiguous runs, instead of gathering a few interleaved taps per pixel; the
    last pass rounds and writes the block back row-major, flipped if asked. Scratch is a few
    small buffers (no per-sample image-sized allocation).
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

    n_cols = col_hi - col_lo
    span = n_cols * 3
    acc = np.empty(span, np.float32)
    columns = np.empty((n_cols, 3 * ROW_BLOCK), np.float32)
    block = np.empty((out_w, 3 * ROW_BLOCK), np.float32)
    pixels = np.empty((out_w, 3 * ROW_BLOCK), np.uint8)
    flat = src.reshape(src.shape[0], src.shape[1] * 3)
    c0 = col_lo * 3
    for o0 in range(0, out_h, ROW_BLOCK):
        rows = min(ROW_BLOCK, out_h - o0)
        run = 3 * rows
        for r in range(rows):
            o = o0 + r
            y0 = first_y[o]
            w = w_y[o, 0]
            row = flat[y0, c0:c0 + span]
            for k in range(span):
                acc[k] = w * row[k]
            for t in range(1, count_y[o]):
                w = w_y[o, t]
                row = flat[y0 + t, c0:c0 + span]
                for k in range(span):
                    acc[k] += w * row[k]
            for x in range(n_cols):
                columns[x, 3 * r] = acc[3 * x]
                columns[x, 3 * r + 1] = acc[3 * x + 1]
                columns[x, 3 * r + 2] = acc[3 * x + 2]
        for x in range(out_w):
            p = first_x[x] - col_lo
            out = block[x]
            w = w_x[x, 0]
            column = columns[p]
            for k in range(run):
                out[k] = w * column[k]
            for t in range(1, count_x[x]):
                w = w_x[x, t]
                column = columns[p + t]
                for k in range(run):
                    out[k] += w * column[k]
        # Round the block where it is contiguous (vectorises), then move whole pixels.
        for x in range(out_w):
            out = block[x]
            packed = pixels[x]
            for k in range(run):
                v = out[k] + np.float32(0.5)
                v = np.float32(0.0) if v < 0.0 else v
                v = np.float32(255.0) if v > 255.0 else v
                packed[k] = np.uint8(np.int32(v))
        for r in range(rows):
            dst_row = dst[o0 + r]
            for x in range(out_w):
                xo = out_w - 1 - x if flip else x
                dst_row[xo, 0] = pixels[x, 3 * r]
                dst_row[xo, 1] = pixels[x, 3 * r + 1]
                dst_row[xo, 2] = pixels[x, 3 * r + 2]
