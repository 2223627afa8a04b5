"""Counter-based RNG: a pure function of (seed, epoch, index, stream, view), SplitMix64 exactly,
uniform."""
import numpy as np
import pytest
from numba import njit
from scipy.stats import chisquare

from loaders import rng

MASK = (1 << 64) - 1
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ref_mix(z):
    """SplitMix64's finaliser on Python ints (Steele, Lea and Flood 2014; Vigna's splitmix64.c)."""
    z = ((z ^ (z >> 30)) * MIX1) & MASK
    z = ((z ^ (z >> 27)) * MIX2) & MASK
    return z ^ (z >> 31)


def ref_state(seed, epoch, index, stream, view=None):
    """The documented hash: each key, offset by the golden gamma, xor-ed in and mixed."""
    z = ref_mix((seed + GOLDEN) & MASK)
    for key in (epoch, index, stream) + (() if view is None else (view,)):
        z = ref_mix(z ^ ((key + GOLDEN) & MASK))
    return z


def ref_uniforms(state, n):
    out = []
    for _ in range(n):
        state = (state + GOLDEN) & MASK
        out.append((ref_mix(state) >> 11) / 2.0 ** 53)
    return out


@njit
def uniforms(seed, epoch, index, stream, view, n):
    """n uniforms of view ``view`` (a negative view: the sample's own sequence)."""
    state = (rng.sample_state(seed, epoch, index, stream) if view < 0
             else rng.view_state(seed, epoch, index, stream, view))
    out = np.empty(n)
    for k in range(n):
        state, u = rng.next_uniform(state)
        out[k] = u
    return out


@njit
def first_uniform_per_index(seed, epoch, stream, n):
    out = np.empty(n)
    for i in range(n):
        _, u = rng.next_uniform(rng.sample_state(seed, epoch, i, stream))
        out[i] = u
    return out


@njit
def ints_and_ranges(n, k, low, high):
    state = rng.sample_state(0, 0, 0, rng.STREAM_CROP)
    ints = np.empty(n, np.int64)
    ranges = np.empty(n)
    for i in range(n):
        state, j = rng.next_int(state, k)
        state, x = rng.next_range(state, low, high)
        ints[i] = j
        ranges[i] = x
    return ints, ranges


def test_next_uniform_is_splitmix64():
    """From state 0 the first output is SplitMix64's published first value."""
    state, u = rng.next_uniform(np.uint64(0))
    assert state == GOLDEN
    assert u == (0xE220A8397B1DCDAF >> 11) / 2.0 ** 53
    assert ref_mix(GOLDEN) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize('key', [(0, 0, 0, 1), (7, 3, 123456, 2), (2 ** 40, 99, 2 ** 33, 4)])
def test_states_and_draws_match_an_independent_implementation(key):
    assert rng.sample_state(*key) == ref_state(*key)
    assert rng.view_state(*key, 5) == ref_state(*key, 5)
    np.testing.assert_array_equal(uniforms(*key, -1, 6), ref_uniforms(ref_state(*key), 6))
    np.testing.assert_array_equal(uniforms(*key, 2, 6), ref_uniforms(ref_state(*key, 2), 6))


def test_deterministic_and_every_key_component_matters():
    base = (3, 1, 17, rng.STREAM_PHOTOMETRIC, 0)
    a = uniforms(*base, 8)
    np.testing.assert_array_equal(a, uniforms(*base, 8))
    for position in range(5):
        key = list(base)
        key[position] += 1
        other = uniforms(*key, 8)
        assert not np.any(a == other), position
    assert not np.any(a == uniforms(*base[:4], -1, 8))  # a view is not the sample's sequence


def test_uniform_over_draws_and_over_keys():
    """1e5 draws of one sequence, and the first draw of 1e5 sample indices: mean, variance
    and a 100-bin chi-square as for U[0, 1)."""
    n = 100_000
    for draws in (uniforms(11, 2, 5, rng.STREAM_CROP, 0, n),
                  first_uniform_per_index(11, 2, rng.STREAM_CROP, n)):
        assert draws.min() >= 0.0 and draws.max() < 1.0
        assert abs(draws.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
        assert abs(draws.var() - 1 / 12) < 0.002
        assert chisquare(np.bincount((draws * 100).astype(int), minlength=100)).pvalue > 1e-4
        assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.02


def test_next_int_and_next_range():
    ints, ranges = ints_and_ranges(60_000, 6, -2.0, 3.0)
    assert ints.min() == 0 and ints.max() == 5
    np.testing.assert_allclose(np.bincount(ints) / len(ints), 1 / 6, atol=0.01)
    assert ranges.min() >= -2.0 and ranges.max() < 3.0
    assert abs(ranges.mean() - 0.5) < 0.03
