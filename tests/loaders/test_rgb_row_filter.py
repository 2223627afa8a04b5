"""The vectorised horizontal pass equals a plain weighted sum over each output pixel's taps."""
import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from loaders.resize import axis_filter
from loaders.rgb_row_filter import (
    STRAIGHT_TAPS,
    check_buffers,
    filter_plan,
    filter_rgb_row,
    row_floats,
)


@njit
def plan_and_filter(row, lo, length, out_w, flip):
    """What a resize does with one source row: plan the pass over [lo, lo + length), filter."""
    _, first, count, weights = axis_filter(float(lo), float(length), out_w, lo, lo + length)
    starts, taps = filter_plan(first, count, weights, lo, flip)
    padded = np.zeros(max(3 * length, row_floats(starts, taps)), np.float32)
    padded[:3 * length] = row[3 * lo:3 * (lo + length)]
    out = np.empty(3 * out_w + 1, np.float32)
    check_buffers(padded, out, starts, taps)
    filter_rgb_row(padded, starts, taps, out)
    return out[:3 * out_w], first, count, weights, taps


@njit
def run(row, starts, taps, out):
    check_buffers(row, out, starts, taps)
    filter_rgb_row(row, starts, taps, out)


def reference(row, lo, first, count, weights, flip):
    """Each output pixel's taps summed one by one, in float64."""
    pixels = row.reshape(-1, 3).astype(np.float64)
    out = np.array([sum(weights[x, t] * pixels[first[x] + t] for t in range(count[x]))
                    for x in range(len(first))])
    return (out[::-1] if flip else out).reshape(-1)


# 2 to 16 taps a pixel: each straight-code count from 2 to 8, and the loop over groups of 4
@pytest.mark.parametrize('length, out_w', [(300, 224), (350, 224), (500, 224), (600, 224),
                                           (700, 224), (800, 224), (400, 96), (90, 224), (37, 5),
                                           (8, 8)])
@pytest.mark.parametrize('flip', [False, True])
def test_equals_the_weighted_sum_of_each_pixels_taps(length, out_w, flip):
    rng = np.random.default_rng(length + out_w)
    lo = 7
    row = rng.uniform(0, 255, 3 * (lo + length + 11)).astype(np.float32)
    out, first, count, weights, taps = plan_and_filter(row, lo, length, out_w, flip)
    most = count.max()
    assert taps.shape[1] == (most if most <= STRAIGHT_TAPS else -(-most // 4) * 4)
    np.testing.assert_allclose(out, reference(row, 0, first, count, weights, flip),
                               rtol=1e-5, atol=1e-3)


def test_the_plan_mirrors_for_a_flip_and_pads_with_zero_weights():
    _, first, count, weights = axis_filter(0.0, 400.0, 60, 0, 400)   # ~6.7x: 2 groups of 4
    starts, taps = filter_plan(first, count, weights, 0, False)
    mirrored, mirrored_taps = filter_plan(first, count, weights, 0, True)
    assert taps.shape == (60, 16) and (np.diff(starts) >= 0).all()
    np.testing.assert_array_equal(mirrored, starts[::-1])
    np.testing.assert_array_equal(mirrored_taps, taps[::-1])
    for x in range(60):
        np.testing.assert_array_equal(taps[x, :count[x]], weights[x, :count[x]])
        assert not taps[x, count[x]:].any()


def test_buffers_too_short_for_the_plan_are_refused():
    _, first, count, weights = axis_filter(0.0, 50.0, 20, 0, 50)
    starts, taps = filter_plan(first, count, weights, 0, False)
    need = row_floats(starts, taps)
    run(np.zeros(need, np.float32), starts, taps, np.zeros(61, np.float32))
    with pytest.raises(ValueError, match='too short'):
        run(np.zeros(need - 1, np.float32), starts, taps, np.zeros(61, np.float32))
    with pytest.raises(ValueError, match='too short'):
        run(np.zeros(need, np.float32), starts, taps, np.zeros(60, np.float32))


def test_only_contiguous_float32_rows_compile():
    _, first, count, weights = axis_filter(0.0, 50.0, 20, 0, 50)
    starts, taps = filter_plan(first, count, weights, 0, False)
    with pytest.raises(TypingError):
        run(np.zeros(2 * 200, np.float32)[::2], starts, taps, np.zeros(61, np.float32))
    with pytest.raises(TypingError):
        run(np.zeros(200, np.float64), starts, taps, np.zeros(61, np.float32))
