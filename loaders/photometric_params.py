"""Per-sample parameters of the MoCo v2 photometric augment: their layout and their draws.

MoCo v2 applies, per view and with independent draws:

* ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``: brightness, contrast, saturation
  and hue in a random order (torchvision's ``ColorJitter.get_params``: ``fn_idx =
  randperm(4)``, factors ``b, c, s ~ U[max(0, 1 - x), 1 + x]``, ``h ~ U[-x, x]``);
* ``RandomGrayscale(p=0.2)`` (3-channel gray);
* ``RandomApply([GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5)`` with ``sigma ~ U[0.1, 2.0]`` and an
  odd kernel of about 10 % of the image side (``blur_kernel_size``; 224 -> 23), reflect padding.

Parameters are drawn by ``photometric_params`` / ``draw_sample_params`` from the counter-based
sequences ``view_state(seed, epoch, index, STREAM_PHOTOMETRIC, view)``, one per view, so they
depend only on (seed, epoch, sample index, view) and this module serves both placements: the
CPU FFCV op (``photometric.py``, applying them with ``photometric_kernels.py``) and the batched
torch path in ``fastssl/gpu_augment.py``.

Parameter vector (float64, length ``NUM_PARAMS``, one per view)::

    P_JITTER       1.0 if the colour jitter is applied, else 0.0
    P_ORDER..+3    the op ids in application order (a permutation of 0..3:
                   OP_BRIGHTNESS=0, OP_CONTRAST=1, OP_SATURATION=2, OP_HUE=3)
    P_BRIGHTNESS   brightness factor b
    P_CONTRAST     contrast factor c
    P_SATURATION   saturation factor s
    P_HUE          hue shift h (fraction of the hue circle)
    P_GRAY         1.0 if converted to grayscale
    P_BLUR         1.0 if blurred
    P_SIGMA        blur sigma

All values are always drawn (a fixed 11 uniforms per view) whether or not an op is applied, so
the sequence layout never depends on earlier outcomes. A strength of 0 gives a factor of exactly 1
(hue 0), which the functional forms treat as the identity, as torchvision skips the op.
"""
import numpy as np

from .jit import jit
from .rng import STREAM_PHOTOMETRIC, next_uniform, view_state

# --- parameter layout ---------------------------------------------------------------------------
P_JITTER = 0
P_ORDER = 1  # four slots: P_ORDER + 0 .. P_ORDER + 3
P_BRIGHTNESS = 5
P_CONTRAST = 6
P_SATURATION = 7
P_HUE = 8
P_GRAY = 9
P_BLUR = 10
P_SIGMA = 11
NUM_PARAMS = 12

OP_BRIGHTNESS = 0
OP_CONTRAST = 1
OP_SATURATION = 2
OP_HUE = 3

# --- strengths layout ---------------------------------------------------------------------------
S_BRIGHTNESS = 0
S_CONTRAST = 1
S_SATURATION = 2
S_HUE = 3
S_P_JITTER = 4
S_P_GRAY = 5
S_P_BLUR = 6
S_SIGMA_MIN = 7
S_SIGMA_MAX = 8
NUM_STRENGTHS = 9


def make_strengths(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p_jitter=0.8,
                   p_gray=0.2, p_blur=0.5, sigma_min=0.1, sigma_max=2.0):
    """The strengths vector (float64, length ``NUM_STRENGTHS``); defaults are MoCo v2's."""
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError('jitter strengths must be >= 0 and hue <= 0.5')
    for p in (p_jitter, p_gray, p_blur):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'probability {p} not in [0, 1]')
    if not 0.0 < sigma_min <= sigma_max:
        raise ValueError('need 0 < sigma_min <= sigma_max')
    s = np.zeros(NUM_STRENGTHS, dtype=np.float64)
    s[S_BRIGHTNESS] = brightness
    s[S_CONTRAST] = contrast
    s[S_SATURATION] = saturation
    s[S_HUE] = hue
    s[S_P_JITTER] = p_jitter
    s[S_P_GRAY] = p_gray
    s[S_P_BLUR] = p_blur
    s[S_SIGMA_MIN] = sigma_min
    s[S_SIGMA_MAX] = sigma_max
    return s


@jit
def blur_kernel_size(height, width):
    """Odd kernel side of ~10 % of the shorter image side: ``int(0.1 * side) // 2 * 2 + 1``
    (compiled: the FFCV op calls it per batch)."""
    side = min(height, width)
    return int(0.1 * side) // 2 * 2 + 1


# --- parameter draws ----------------------------------------------------------------------------
@jit(inline='always')
def _factor(state, strength):
    """torchvision's ``_check_input`` range [max(0, 1 - x), 1 + x]; exactly 1 when x == 0."""
    state, u = next_uniform(state)
    low = max(0.0, 1.0 - strength)
    return state, low + (1.0 + strength - low) * u


@jit
def draw_view_params(state, strengths, out):
    """Draw one view's parameters into ``out`` (length ``NUM_PARAMS``); return the new state.

    Consumes exactly 11 uniforms: jitter coin, 3 for the permutation (Fisher-Yates, uniform over
    the 24 orders as ``randperm(4)``), b, c, s, h, gray coin, blur coin, sigma.
    """
    state, u = next_uniform(state)
    out[P_JITTER] = 1.0 if u < strengths[S_P_JITTER] else 0.0
    for k in range(4):
        out[P_ORDER + k] = k
    for k in range(3, 0, -1):  # Fisher-Yates
        state, u = next_uniform(state)
        j = min(int(u * (k + 1)), k)
        tmp = out[P_ORDER + k]
        out[P_ORDER + k] = out[P_ORDER + j]
        out[P_ORDER + j] = tmp
    state, b = _factor(state, strengths[S_BRIGHTNESS])
    state, c = _factor(state, strengths[S_CONTRAST])
    state, s = _factor(state, strengths[S_SATURATION])
    out[P_BRIGHTNESS] = b
    out[P_CONTRAST] = c
    out[P_SATURATION] = s
    state, u = next_uniform(state)
    out[P_HUE] = strengths[S_HUE] * (2.0 * u - 1.0)
    state, u = next_uniform(state)
    out[P_GRAY] = 1.0 if u < strengths[S_P_GRAY] else 0.0
    state, u = next_uniform(state)
    out[P_BLUR] = 1.0 if u < strengths[S_P_BLUR] else 0.0
    state, u = next_uniform(state)
    out[P_SIGMA] = strengths[S_SIGMA_MIN] + (strengths[S_SIGMA_MAX] - strengths[S_SIGMA_MIN]) * u
    return state


@jit
def draw_sample_params(seed, epoch, index, view_ids, strengths, out):
    """Views ``view_ids`` (int64 array, the views' numbers within the sample) of one sample:
    ``out`` is (len(view_ids), NUM_PARAMS); view v is drawn from ``view_state(seed, epoch,
    index, STREAM_PHOTOMETRIC, v)``. Shared by both placements."""
    for k in range(out.shape[0]):
        state = view_state(seed, epoch, index, STREAM_PHOTOMETRIC, view_ids[k])
        draw_view_params(state, strengths, out[k])


@jit
def _photometric_params(seed, epoch, indices, n_views, first_view, strengths):
    out = np.empty((indices.shape[0], n_views, NUM_PARAMS), dtype=np.float64)
    view_ids = np.arange(first_view, first_view + n_views)
    for b in range(indices.shape[0]):
        draw_sample_params(seed, epoch, indices[b], view_ids, strengths, out[b])
    return out


def photometric_params(seed, epoch, indices, n_views, strengths, first_view=0):
    """float64 array (B, n_views, NUM_PARAMS): parameters of views first_view ... of samples
    ``indices``."""
    indices = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    strengths = np.ascontiguousarray(strengths, dtype=np.float64)
    return _photometric_params(int(seed), int(epoch), indices, int(n_views), int(first_view),
                               strengths)
