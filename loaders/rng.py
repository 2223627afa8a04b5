"""Counter-based random numbers for Numba ops: reproducible per sample, whatever the threads.

``np.random`` inside FFCV's Numba threads depends on which thread handled which sample
(ffcv issues #164, #392). Here every draw is a pure function of (seed, epoch, sample index,
stream): each sample starts its own SplitMix64 sequence from a hash of those four numbers, so a
sample's crops and augment parameters are the same on every run and any worker count, which
is what makes exact resume possible.

Streams separate independent consumers of one sample (the crop op, the photometric op) so
that adding one does not shift the other's draws; each *view* of a sample also has its own
sequence (``view_state``), so view v's draws do not depend on how many other views exist or
which op renders them (e.g. frame a and frame b of a video pair, decoded by two ops).
"""
import numpy as np

from .jit import jit

STREAM_CROP = 1
STREAM_PHOTOMETRIC = 2
STREAM_REGION = 3     # which tracked region a sample's region views show (one per sample)
STREAM_CONTEXT = 4    # the context margin around the region (one per view)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0


@jit(inline='always')
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@jit(inline='always')
def sample_state(seed, epoch, index, stream):
    """Initial state of the sequence owned by (seed, epoch, sample index, stream)."""
    z = _mix(np.uint64(seed) + _GOLDEN)
    z = _mix(z ^ (np.uint64(epoch) + _GOLDEN))
    z = _mix(z ^ (np.uint64(index) + _GOLDEN))
    return _mix(z ^ (np.uint64(stream) + _GOLDEN))


@jit(inline='always')
def view_state(seed, epoch, index, stream, view):
    """Initial state of view ``view`` of a sample within ``stream``."""
    return _mix(sample_state(seed, epoch, index, stream) ^ (np.uint64(view) + _GOLDEN))


@jit(inline='always')
def next_uniform(state):
    """Advance ``state``; return (new_state, u) with u uniform in [0, 1) (53 random bits)."""
    state = state + _GOLDEN
    return state, float(_mix(state) >> np.uint64(11)) * _INV_2_53


@jit(inline='always')
def next_range(state, low, high):
    """(new_state, x) with x uniform in [low, high)."""
    state, u = next_uniform(state)
    return state, low + (high - low) * u


@jit(inline='always')
def next_int(state, n):
    """(new_state, k) with k uniform in {0, ..., n-1}."""
    state, u = next_uniform(state)
    k = int(u * n)
    return state, min(k, n - 1)
