"""Numba kernels of the MoCo v2 photometric augment: apply one view's drawn parameters.

Functional forms work in place on C-contiguous float32 ``H x W x 3`` arrays with values in
[0, 1]; each mirrors ``torchvision.transforms.v2.functional`` on float images (formulas in
their docstrings), computed in float32 like torch. ``apply_params`` chains them as a parameter
vector (``photometric_params.py``) says; ``augment_view`` does so on one uint8 view.
"""
import math

import numpy as np

from .jit import jit
from .photometric_params import (
    OP_BRIGHTNESS,
    OP_CONTRAST,
    OP_SATURATION,
    P_BLUR,
    P_BRIGHTNESS,
    P_CONTRAST,
    P_GRAY,
    P_HUE,
    P_JITTER,
    P_ORDER,
    P_SATURATION,
    P_SIGMA,
)

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
GRAY_R = np.float32(0.2989)
GRAY_G = np.float32(0.587)
GRAY_B = np.float32(0.114)

# Blur taps whose weight is below this fraction of the centre weight are dropped:
# exp(-d^2 / (2 sigma^2)) < 1e-7  <=>  d > sigma * sqrt(2 ln 1e7).
_TAP_CUTOFF = math.sqrt(2.0 * math.log(1e7))


# --- functional forms (float32 H x W x 3, values in [0, 1], in place) ---------------------------
@jit(inline='always')
def _clamp01(x):
    return min(max(x, np.float32(0.0)), np.float32(1.0))


@jit
def adjust_brightness(img, f):
    """``x <- clamp(f * x, 0, 1)``; torchvision ``adjust_brightness``."""
    flat = img.reshape(-1)
    a = np.float32(f)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j])


@jit
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


@jit
def adjust_contrast(img, f):
    """``x <- clamp(f * x + (1 - f) * m, 0, 1)`` with ``m`` the mean of the grayscale image;
    torchvision ``adjust_contrast`` (``_blend(image, mean(rgb_to_grayscale(image)), f)``)."""
    m = gray_mean(img)
    a = np.float32(f)
    c = np.float32((1.0 - f) * m)
    flat = img.reshape(-1)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j] + c)


@jit
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


@jit(inline='always')
def _hue_channel(mx, d, h6, n):
    """HSV -> RGB for one channel, branch-free: ``v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 h) mod 6`` (n = 5, 3, 1 for r, g, b) and ``v s = max - min``."""
    k = n + h6
    k = k - np.float32(6.0) * np.floor(k * np.float32(1.0 / 6.0))
    w = min(max(min(k, np.float32(4.0) - k), np.float32(0.0)), np.float32(1.0))
    return _clamp01(mx - d * w)


@jit
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


@jit
def to_grayscale(img):
    """``r, g, b <- 0.2989 r + 0.587 g + 0.114 b``; torchvision
    ``rgb_to_grayscale(num_output_channels=3)`` (no clamp needed: weights sum to 0.9999)."""
    flat = img.reshape(-1)
    for p in range(flat.shape[0] // 3):
        gray = GRAY_R * flat[3 * p] + GRAY_G * flat[3 * p + 1] + GRAY_B * flat[3 * p + 2]
        flat[3 * p] = gray
        flat[3 * p + 1] = gray
        flat[3 * p + 2] = gray


@jit
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


@jit(inline='always')
def _reflect(i, n):
    """Index into [0, n) with reflect padding (no edge repeat, as torch's ``mode='reflect'``)."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


@jit
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
        raise ValueError('blur kernel radius must be smaller than the image side')
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
@jit
def to_float(view, buf):
    """uint8 H x W x 3 -> float32 ``x / 255`` into ``buf``."""
    src = view.reshape(-1)
    dst = buf.reshape(-1)
    for j in range(dst.shape[0]):
        dst[j] = np.float32(src[j]) / np.float32(255.0)


@jit
def to_uint8(buf, view):
    """float32 [0, 1] -> uint8 ``round(255 x)`` (half up), clamped."""
    src = buf.reshape(-1)
    dst = view.reshape(-1)
    for j in range(src.shape[0]):
        x = src[j] * np.float32(255.0) + np.float32(0.5)
        dst[j] = np.uint8(min(max(x, np.float32(0.0)), np.float32(255.0)))


@jit
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


@jit
def augment_view(view, params, ksize, buf, scratch):
    """Augment one uint8 H x W x 3 view in place (``buf``, ``scratch``: float32 H x W x 3).

    Converts to float once, ``apply_params``, writes back with rounding. A view with no op
    applied is left untouched."""
    if params[P_JITTER] == 0.0 and params[P_GRAY] == 0.0 and params[P_BLUR] == 0.0:
        return
    to_float(view, buf)
    apply_params(buf, params, ksize, scratch)
    to_uint8(buf, view)
