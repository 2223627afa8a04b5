"""MoCo v2 photometric augmentation in Numba, with torchvision's exact semantics.

MoCo v2 applies, per view and with independent draws:

* ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``: brightness, contrast, saturation
  and hue in a random order (torchvision's ``ColorJitter.get_params``: ``fn_idx =
  randperm(4)``, factors ``b, c, s ~ U[max(0, 1 - x), 1 + x]``, ``h ~ U[-x, x]``);
* ``RandomGrayscale(p=0.2)`` (3-channel gray);
* ``RandomApply([GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5)`` with ``sigma ~ U[0.1, 2.0]`` and an
  odd kernel of about 10 % of the image side (``blur_kernel_size``; 224 -> 23), reflect padding.

Parameters are drawn by ``photometric_params`` / ``draw_sample_params`` from the counter-based
sequences ``view_state(seed, epoch, index, STREAM_PHOTOMETRIC, view)``, one per view, so they
depend only on (seed, epoch, sample index, view) and the same function serves both
placements: the CPU FFCV op ``PhotometricAugment`` below and the batched torch path in
``fastssl/gpu_augment.py``.

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

All values are always drawn (a fixed 10 uniforms per view) whether or not an op is applied, so
the sequence layout never depends on earlier outcomes. A strength of 0 gives a factor of exactly 1
(hue 0), which the functional forms treat as the identity, as torchvision skips the op.

Functional forms work in place on C-contiguous float32 ``H x W x 3`` arrays with values in
[0, 1]; each mirrors ``torchvision.transforms.v2.functional`` on float images (formulas in
their docstrings), computed in float32 like torch. ``augment_view`` chains them on one uint8 view.
"""
from dataclasses import replace
import math

import numpy as np
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from numba import njit

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

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
GRAY_R = np.float32(0.2989)
GRAY_G = np.float32(0.587)
GRAY_B = np.float32(0.114)

# Blur taps whose weight is below this fraction of the centre weight are dropped:
# exp(-d^2 / (2 sigma^2)) < 1e-7  <=>  d > sigma * sqrt(2 ln 1e7).
_TAP_CUTOFF = math.sqrt(2.0 * math.log(1e7))


def make_strengths(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p_jitter=0.8,
                   p_gray=0.2, p_blur=0.5, sigma_min=0.1, sigma_max=2.0):
    """The strengths vector (float64, length ``NUM_STRENGTHS``); defaults are MoCo v2's."""
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError("jitter strengths must be >= 0 and hue <= 0.5")
    for p in (p_jitter, p_gray, p_blur):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} not in [0, 1]")
    if not 0.0 < sigma_min <= sigma_max:
        raise ValueError("need 0 < sigma_min <= sigma_max")
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


def blur_kernel_size(height, width):
    """Odd kernel side of ~10 % of the shorter image side: ``int(0.1 * side) // 2 * 2 + 1``."""
    return _blur_kernel_size(height, width)


@njit
def _blur_kernel_size(height, width):
    side = min(height, width)
    return int(0.1 * side) // 2 * 2 + 1


# --- parameter draws ----------------------------------------------------------------------------
@njit(inline="always")
def _factor(state, strength):
    """torchvision's ``_check_input`` range [max(0, 1 - x), 1 + x]; exactly 1 when x == 0."""
    state, u = next_uniform(state)
    low = max(0.0, 1.0 - strength)
    return state, low + (1.0 + strength - low) * u


@njit
def draw_view_params(state, strengths, out):
    """Draw one view's parameters into ``out`` (length ``NUM_PARAMS``); return the new state.

    Consumes exactly 10 uniforms: jitter coin, 3 for the permutation (Fisher-Yates, uniform over
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


@njit
def draw_sample_params(seed, epoch, index, view_ids, strengths, out):
    """Views ``view_ids`` (int64 array, the views' numbers within the sample) of one sample:
    ``out`` is (len(view_ids), NUM_PARAMS); view v is drawn from ``view_state(seed, epoch,
    index, STREAM_PHOTOMETRIC, v)``. Shared by both placements."""
    for k in range(out.shape[0]):
        state = view_state(seed, epoch, index, STREAM_PHOTOMETRIC, view_ids[k])
        draw_view_params(state, strengths, out[k])


@njit
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


# --- functional forms (float32 H x W x 3, values in [0, 1], in place) ---------------------------
@njit(inline="always")
def _clamp01(x):
    return min(max(x, np.float32(0.0)), np.float32(1.0))


@njit(error_model="numpy")
def adjust_brightness(img, f):
    """``x <- clamp(f * x, 0, 1)``; torchvision ``adjust_brightness``."""
    flat = img.reshape(-1)
    a = np.float32(f)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j])


@njit(error_model="numpy")
def gray_mean(img):
    """Mean over pixels of ``0.2989 r + 0.587 g + 0.114 b`` (float64 accumulation)."""
    flat = img.reshape(-1)
    n = flat.shape[0] // 3
    sr = 0.0
    sg = 0.0
    sb = 0.0
    for p in range(n):
        sr += flat[3 * p]
        sg += flat[3 * p + 1]
        sb += flat[3 * p + 2]
    return (0.2989 * sr + 0.587 * sg + 0.114 * sb) / max(n, 1)


@njit(error_model="numpy")
def adjust_contrast(img, f):
    """``x <- clamp(f * x + (1 - f) * m, 0, 1)`` with ``m`` the mean of the grayscale image;
    torchvision ``adjust_contrast`` (``_blend(image, mean(rgb_to_grayscale(image)), f)``)."""
    m = gray_mean(img)
    a = np.float32(f)
    c = np.float32((1.0 - f) * m)
    flat = img.reshape(-1)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j] + c)


@njit(error_model="numpy")
def adjust_saturation(img, f):
    """``x <- clamp(f * x + (1 - f) * gray, 0, 1)`` per pixel, ``gray = 0.2989 r + 0.587 g +
    0.114 b``; torchvision ``adjust_saturation``."""
    flat = img.reshape(-1)
    a = np.float32(f)
    c = np.float32(1.0 - f)
    for p in range(flat.shape[0] // 3):
        r = flat[3 * p]
        g = flat[3 * p + 1]
        b = flat[3 * p + 2]
        gray = c * (GRAY_R * r + GRAY_G * g + GRAY_B * b)
        flat[3 * p] = _clamp01(a * r + gray)
        flat[3 * p + 1] = _clamp01(a * g + gray)
        flat[3 * p + 2] = _clamp01(a * b + gray)


@njit(inline="always")
def _hue_channel(mx, d, h6, n):
    """HSV -> RGB for one channel, branch-free: ``v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 h) mod 6`` (n = 5, 3, 1 for r, g, b) and ``v s = max - min``."""
    k = n + h6
    k = k - np.float32(6.0) * np.floor(k * np.float32(1.0 / 6.0))
    w = min(max(min(k, np.float32(4.0) - k), np.float32(0.0)), np.float32(1.0))
    return _clamp01(mx - d * w)


@njit(error_model="numpy")
def adjust_hue(img, h):
    """Rotate hue by ``h`` (fraction of the circle, |h| <= 0.5); torchvision ``adjust_hue``.

    torchvision converts to HSV (``_rgb_to_hsv``: v = max, s = (max - min) / max, hue sector from
    the max channel, r taking precedence over g over b), adds ``h`` mod 1 and converts back
    (``_hsv_to_rgb``: sector i = floor(6h), p, q, t). Here the same maps are written without
    branches: the hue in sixths ``h6`` is selected from the three sector formulas, and each output
    channel is ``max - (max - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + h6 + 6 h) mod
    6``, which equals the p/q/t/v selection of ``_hsv_to_rgb`` (the standard closed form).
    Gray pixels (max == min) are unchanged, as in torchvision. Equal to torchvision up to
    float32 rounding.
    """
    flat = img.reshape(-1)
    shift = np.float32(6.0 * h)
    # max(d, tiny) instead of a zero test keeps the loop branch-free; d == 0 gives num == 0 and an
    # output of exactly ``max``.
    tiny = np.float32(1e-30)
    for p in range(flat.shape[0] // 3):
        r = flat[3 * p]
        g = flat[3 * p + 1]
        b = flat[3 * p + 2]
        mx = max(r, max(g, b))
        mn = min(r, min(g, b))
        d = mx - mn
        num = (g - b) if mx == r else ((np.float32(2.0) * d + b - r) if mx == g
                                       else (np.float32(4.0) * d + r - g))
        h6 = num / max(d, tiny) + shift
        flat[3 * p] = _hue_channel(mx, d, h6, np.float32(5.0))
        flat[3 * p + 1] = _hue_channel(mx, d, h6, np.float32(3.0))
        flat[3 * p + 2] = _hue_channel(mx, d, h6, np.float32(1.0))


@njit(error_model="numpy")
def to_grayscale(img):
    """``r, g, b <- 0.2989 r + 0.587 g + 0.114 b``; torchvision
    ``rgb_to_grayscale(num_output_channels=3)`` (no clamp needed: weights sum to 0.9999)."""
    flat = img.reshape(-1)
    for p in range(flat.shape[0] // 3):
        gray = GRAY_R * flat[3 * p] + GRAY_G * flat[3 * p + 1] + GRAY_B * flat[3 * p + 2]
        flat[3 * p] = gray
        flat[3 * p + 1] = gray
        flat[3 * p + 2] = gray


@njit(error_model="numpy")
def gaussian_kernel_half(sigma, ksize):
    """Half of the 1-D kernel, float32 ``w[0..r_eff]`` (``w[0]`` the centre), normalised over the
    kept taps. torchvision: ``x = linspace(-(k-1)/2, (k-1)/2, k)``, ``w = exp(-0.5 (x/sigma)^2)``
    normalised; taps below 1e-7 of the centre are dropped (their total is < 1e-6)."""
    radius = ksize // 2
    keep = min(radius, int(sigma * _TAP_CUTOFF))
    w = np.empty(keep + 1, dtype=np.float64)
    total = 0.0
    for t in range(keep + 1):
        w[t] = math.exp(-0.5 * (t / sigma) ** 2)
        total += w[t] if t == 0 else 2.0 * w[t]
    return (w / total).astype(np.float32)


@njit(inline="always")
def _reflect(i, n):
    """Index into [0, n) with reflect padding (no edge repeat, as torch's ``mode='reflect'``)."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


@njit(error_model="numpy")
def gaussian_blur(img, sigma, ksize, scratch):
    """Separable Gaussian blur, reflect padding; torchvision ``gaussian_blur(kernel_size=[k, k],
    sigma=[sigma, sigma])`` (a 2-D conv with the outer product of the 1-D kernel on a
    reflect-padded image equals a vertical then a horizontal 1-D pass, each reflect-padded).
    ``scratch`` is a float32 array of ``img``'s shape."""
    H, W, _ = img.shape
    w = gaussian_kernel_half(sigma, ksize)
    r = w.shape[0] - 1
    if r == 0:
        return
    if r >= H or r >= W:
        raise ValueError("blur kernel radius must be smaller than the image side")
    W3 = W * 3
    src = img.reshape(H, W3)
    tmp = scratch.reshape(H, W3)
    w0 = w[0]
    # vertical pass: img -> scratch; whole rows (flat W*3), symmetric taps folded.
    for y in range(H):
        out = tmp[y]
        row = src[y]
        for j in range(W3):
            out[j] = w0 * row[j]
        for t in range(1, r + 1):
            ra = src[_reflect(y - t, H)]
            rb = src[_reflect(y + t, H)]
            wt = w[t]
            for j in range(W3):
                out[j] += wt * (ra[j] + rb[j])
    # horizontal pass: scratch -> img. Each row is copied into a reflect-padded flat row, then
    # out[j] = w0 p[j + 3r] + sum_t w_t (p[j + 3r - 3t] + p[j + 3r + 3t]) over the flat W*3 row
    # (slices keep every index non-negative so the loops vectorise).
    pad = np.empty((W + 2 * r) * 3, dtype=np.float32)
    lo = 3 * r
    for y in range(H):
        row = tmp[y]
        out = src[y]
        pad[lo:lo + W3] = row
        for t in range(1, r + 1):
            for c in range(3):
                pad[lo - 3 * t + c] = row[3 * t + c]
                pad[lo + W3 - 3 + 3 * t + c] = row[W3 - 3 - 3 * t + c]
        centre = pad[lo:lo + W3]
        for j in range(W3):
            out[j] = w0 * centre[j]
        for t in range(1, r + 1):
            wt = w[t]
            o = 3 * t
            left = pad[lo - o:lo - o + W3]
            right = pad[lo + o:lo + o + W3]
            for j in range(W3):
                out[j] += wt * (left[j] + right[j])


# --- one view -----------------------------------------------------------------------------------
@njit(error_model="numpy")
def to_float(view, buf):
    """uint8 H x W x 3 -> float32 ``x / 255`` into ``buf``."""
    src = view.reshape(-1)
    dst = buf.reshape(-1)
    for j in range(dst.shape[0]):
        dst[j] = np.float32(src[j]) / np.float32(255.0)


@njit(error_model="numpy")
def to_uint8(buf, view):
    """float32 [0, 1] -> uint8 ``round(255 x)`` (half up), clamped."""
    src = buf.reshape(-1)
    dst = view.reshape(-1)
    for j in range(src.shape[0]):
        x = src[j] * np.float32(255.0) + np.float32(0.5)
        dst[j] = np.uint8(min(max(x, np.float32(0.0)), np.float32(255.0)))


@njit(error_model="numpy")
def apply_params(buf, params, ksize, scratch):
    """Apply one view's parameters to float32 ``buf`` in place: the jitter ops (if P_JITTER) in
    P_ORDER, then grayscale (if P_GRAY), then blur (if P_BLUR). Identity factors are skipped."""
    if params[P_JITTER] != 0.0:
        for k in range(4):
            op = int(params[P_ORDER + k])
            if op == OP_BRIGHTNESS:
                if params[P_BRIGHTNESS] != 1.0:
                    adjust_brightness(buf, params[P_BRIGHTNESS])
            elif op == OP_CONTRAST:
                if params[P_CONTRAST] != 1.0:
                    adjust_contrast(buf, params[P_CONTRAST])
            elif op == OP_SATURATION:
                if params[P_SATURATION] != 1.0:
                    adjust_saturation(buf, params[P_SATURATION])
            else:
                if params[P_HUE] != 0.0:
                    adjust_hue(buf, params[P_HUE])
    if params[P_GRAY] != 0.0:
        to_grayscale(buf)
    if params[P_BLUR] != 0.0:
        gaussian_blur(buf, params[P_SIGMA], ksize, scratch)


@njit(error_model="numpy")
def augment_view(view, params, ksize, buf, scratch):
    """Augment one uint8 H x W x 3 view in place (``buf``, ``scratch``: float32 H x W x 3).

    Converts to float once, ``apply_params``, writes back with rounding. A view with no op
    applied is left untouched."""
    if params[P_JITTER] == 0.0 and params[P_GRAY] == 0.0 and params[P_BLUR] == 0.0:
        return
    to_float(view, buf)
    apply_params(buf, params, ksize, scratch)
    to_uint8(buf, view)


# --- FFCV op ------------------------------------------------------------------------------------
class PhotometricAugment(Operation):
    """MoCo v2 colour jitter / grayscale / blur on a uint8 batch (B, V, H, W, 3), in place.

    Parameters of view ``k`` of the sample with dataset index ``i`` are those of view number
    ``view_ids[k]``: ``photometric_params(seed, epoch, [i], n, strengths)[0, view_ids[k]]``
    (same code, any n > view_ids[k]). ``view_ids`` numbers this batch's views within the sample
    (the decoder's views; default 0 .. V-1), ``epoch`` is read from ``epoch_cell`` when the
    batch is processed, so output is reproducible per sample for any thread count.
    ``blur_kernel``: odd kernel side; ``None`` -> ``blur_kernel_size(H, W)``.

    Scratch (two float32 H x W x 3 buffers) is allocated per sample inside the parallel loop
    rather than through an ``AllocationQuery``, which would pin ``batches_ahead`` x batch x
    2 float images.
    """

    def __init__(self, seed, epoch_cell, strengths=None, blur_kernel=None, view_ids=None):
        super().__init__()
        self.seed = int(seed)
        self.view_ids = None if view_ids is None else np.array(view_ids, dtype=np.int64)
        self.epoch_cell = epoch_cell
        self.strengths = (make_strengths() if strengths is None
                          else np.ascontiguousarray(strengths, dtype=np.float64))
        if self.strengths.shape != (NUM_STRENGTHS,):
            raise ValueError(f"strengths must have shape ({NUM_STRENGTHS},)")
        if blur_kernel is not None and (blur_kernel < 1 or blur_kernel % 2 == 0):
            raise ValueError("blur_kernel must be a positive odd integer")
        self.blur_kernel = blur_kernel

    def generate_code(self):
        my_range = Compiler.get_iterator()
        read_epoch = Compiler.compile(self.epoch_cell.make_reader())
        seed = self.seed
        strengths = self.strengths.copy()
        fixed_ksize = -1 if self.blur_kernel is None else int(self.blur_kernel)
        n_params = NUM_PARAMS
        default_ids = self.view_ids is None
        fixed_ids = np.zeros(0, np.int64) if default_ids else self.view_ids

        def photometric(images, dst, indices):
            epoch = read_epoch()
            B = images.shape[0]
            V = images.shape[1]
            H = images.shape[2]
            W = images.shape[3]
            ksize = fixed_ksize
            if ksize < 0:
                ksize = _blur_kernel_size(H, W)
            view_ids = np.arange(V) if default_ids else fixed_ids
            for i in my_range(B):
                params = np.empty((V, n_params), dtype=np.float64)
                draw_sample_params(seed, epoch, indices[i], view_ids, strengths, params)
                buf = np.empty((H, W, 3), dtype=np.float32)
                scratch = np.empty((H, W, 3), dtype=np.float32)
                for v in range(V):
                    augment_view(images[i, v], params[v], ksize, buf, scratch)
            return images

        photometric.is_parallel = True
        photometric.with_indices = True
        return photometric

    def declare_state_and_memory(self, previous_state):
        shape = previous_state.shape
        if shape is not None and (len(shape) != 4 or shape[-1] != 3):
            raise ValueError(f"PhotometricAugment expects (V, H, W, 3) samples, got {shape}")
        if previous_state.dtype != np.dtype(np.uint8):
            raise ValueError("PhotometricAugment expects uint8 images")
        if self.view_ids is not None and shape is not None and len(self.view_ids) != shape[0]:
            raise ValueError(f"{len(self.view_ids)} view ids for {shape[0]} views")
        return replace(previous_state, jit_mode=True), None
