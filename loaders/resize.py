"""Antialiased bilinear resize of a crop with a fused horizontal flip, in Numba.

Same filter as ``torchvision.transforms.v2.functional.resized_crop(..., antialias=True)``
(and PIL's BILINEAR): a triangle kernel stretched by the downscale factor, so views are not
bought with aliasing. Separable, in two orders (``resize_view`` takes the cheaper one
for a box). ``resize_crop_flip`` runs the vertical pass first, because its inner loop walks a
contiguous row span (vectorises), leaving the horizontal pass (explicit vectors,
``rgb_row_filter.py``) only ``out_h`` rows. For a box with fewer rows than the output (an
upscale) that would run the horizontal pass more often than there are source rows;
``upscale_crop_flip`` runs it once per source row instead. The flip is free: the horizontal
pass writes columns right to left.

Crop boxes are floats so that a JPEG decoded at 1/2, 1/4 or 1/8 scale (TurboJPEG's DCT
scaling) can be cropped with the box scaled down exactly; for integer boxes the weights equal
torchvision's.
"""
import math

import numpy as np

from .jit import jit
from .rgb_row_filter import check_buffers, filter_plan, filter_rgb_row, row_floats


@jit(inline='always')
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


@jit(inline='always')
def max_taps_for(length, out_size):
    scale = length / out_size
    support = scale if scale >= 1.0 else 1.0
    return int(math.ceil(2.0 * support)) + 2


@jit(inline='always')
def crop_pixels(src, top, left, height, width):
    """The source pixel range (row_lo, row_hi, col_lo, col_hi) a float box touches, clipped
    to ``src`` on every side (a box starting a fraction above or left of it read before it)."""
    return (max(int(math.floor(top)), 0), min(int(math.ceil(top + height)), src.shape[0]),
            max(int(math.floor(left)), 0), min(int(math.ceil(left + width)), src.shape[1]))


@jit(inline='always')
def axis_filter(start, length, out_size, limit_lo, limit_hi):
    """(taps, first, count, weights) of one axis: ``filter_weights`` in arrays of its size."""
    taps = max_taps_for(length, out_size)
    first = np.empty(out_size, np.int64)
    count = np.empty(out_size, np.int64)
    weights = np.empty((out_size, taps), np.float32)
    filter_weights(start, length, out_size, limit_lo, limit_hi, taps, first, count, weights)
    return taps, first, count, weights


@jit(inline='always')
def resize_plan(src, top, left, height, width, out_h, out_w, flip):
    """Both passes' filters for resizing a float box of ``src`` to out_h x out_w: the vertical
    (taps_y, first_y, count_y, w_y), the horizontal plan (starts, taps) and the crop's span
    in a row of ``src`` as floats (first float, count)."""
    row_lo, row_hi, col_lo, col_hi = crop_pixels(src, top, left, height, width)
    taps_y, first_y, count_y, w_y = axis_filter(top, height, out_h, row_lo, row_hi)
    _, first_x, count_x, w_x = axis_filter(left, width, out_w, col_lo, col_hi)
    starts, taps = filter_plan(first_x, count_x, w_x, col_lo, flip)
    return taps_y, first_y, count_y, w_y, starts, taps, col_lo * 3, (col_hi - col_lo) * 3


@jit(inline='always')
def store_row(values, dst_row):
    """Round and clamp a float row into uint8 (a separate contiguous pass: it vectorises);
    ``values`` may be longer than ``dst_row``."""
    for k in range(dst_row.shape[0]):
        v = values[k] + np.float32(0.5)
        v = np.float32(0.0) if v < 0.0 else v
        v = np.float32(255.0) if v > 255.0 else v
        dst_row[k] = np.uint8(np.int32(v))


@jit(nogil=True, cache=True)
def resize_crop_flip(src, top, left, height, width, flip, dst):
    """Resize src[top:top+height, left:left+width] (float box) into dst (out_h, out_w, 3) uint8.

    Row by row: the vertical taps of one output row are summed into a small float row (it
    stays in L1 cache), which the horizontal pass (``rgb_row_filter``) then reads. No large
    scratch buffers, so nothing big is allocated or page-faulted per sample.
    """
    out_h, out_w = dst.shape[0], dst.shape[1]
    taps_y, first_y, count_y, w_y, starts, taps, c0, span = resize_plan(
        src, top, left, height, width, out_h, out_w, flip)
    # zeros past the crop: the horizontal pass reads whole tap groups (their weights are 0)
    acc = np.zeros(max(span, row_floats(starts, taps)), np.float32)
    out_row = np.empty(out_w * 3 + 1, np.float32)
    check_buffers(acc, out_row, starts, taps)
    flat = src.reshape(src.shape[0], src.shape[1] * 3)
    for o in range(out_h):
        # the first tap is stored, not added to zeros: one pass over the row fewer, same floats
        # (an output row has at least one tap: the box spans at least one source row)
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
        filter_rgb_row(acc, starts, taps, out_row)
        store_row(out_row, dst[o].reshape(out_w * 3))


@jit(nogil=True, cache=True)
def upscale_crop_flip(src, top, left, height, width, flip, dst):
    """``resize_crop_flip`` with the horizontal pass first: resize src[top:top+height,
    left:left+width] (float box) into dst (out_h, out_w, 3) uint8, flipped if ``flip``.

    Cheaper when the crop has fewer rows than the output (an upscale): each source row is
    resized horizontally once, into a ring of ``taps_y`` rows (an output row's taps are
    consecutive source rows, so they sit in distinct slots), and every output row is then a
    contiguous weighted sum of ring rows."""
    out_h, out_w = dst.shape[0], dst.shape[1]
    taps_y, first_y, count_y, w_y, starts, taps, c0, span = resize_plan(
        src, top, left, height, width, out_h, out_w, flip)
    row_len = out_w * 3
    # The source row as floats, zeros past the crop (the horizontal pass reads whole tap groups)
    padded = np.zeros(max(span, row_floats(starts, taps)), np.float32)
    ring = np.empty((taps_y, row_len + 1), np.float32)   # + 1: filter_rgb_row's spare lane
    held = np.full(taps_y, -1, np.int64)       # source row in each ring slot
    out_row = np.empty(row_len, np.float32)
    check_buffers(padded, ring[0], starts, taps)
    flat = src.reshape(src.shape[0], src.shape[1] * 3)
    for o in range(out_h):
        y0, n = first_y[o], count_y[o]
        for y in range(y0, y0 + n):
            slot = y % taps_y
            if held[slot] == y:
                continue
            held[slot] = y
            row = flat[y, c0:c0 + span]
            for k in range(span):
                padded[k] = row[k]
            filter_rgb_row(padded, starts, taps, ring[slot])
        if n == 2:
            w0, w1 = w_y[o, 0], w_y[o, 1]
            a, b = ring[y0 % taps_y], ring[(y0 + 1) % taps_y]
            for k in range(row_len):
                out_row[k] = w0 * a[k] + w1 * b[k]
        else:
            w0, a = w_y[o, 0], ring[y0 % taps_y]
            for k in range(row_len):
                out_row[k] = w0 * a[k]
            for t in range(1, n):
                w = w_y[o, t]
                a = ring[(y0 + t) % taps_y]
                for k in range(row_len):
                    out_row[k] += w * a[k]
        store_row(out_row, dst[o].reshape(row_len))


@jit(nogil=True, cache=True)
def resize_view(src, top, left, height, width, flip, dst):
    """Resize src[top:top+height, left:left+width] (float box) into dst (out_h, out_w, 3)
    uint8, flipped if ``flip``, with the cheaper order of passes: horizontal first
    (``upscale_crop_flip``) when the box has fewer rows than the output, else vertical first
    (``resize_crop_flip``). The two differ only in the order of float sums (at most 1 level)."""
    if height < dst.shape[0]:
        upscale_crop_flip(src, top, left, height, width, flip, dst)
    else:
        resize_crop_flip(src, top, left, height, width, flip, dst)
