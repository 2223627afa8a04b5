"""Numba kernels of the MoCo v2 photometric augment: apply one view's drawn parameters.

The colour forms work in place on C-contiguous float32 planes ``3 x H x W`` (torchvision's
channel-first layout) with values in [0, 1]: a pixel's three values then sit in three vectors'
same lane, where interleaved ``H x W x 3`` pixels need shuffles (saturation and hue cost 45 %
and 30 % less planar). The blur works on interleaved pixels, into a second array: its taps are
shifts along a row, and one long interleaved row runs faster than three short planar ones.
Each mirrors ``torchvision.transforms.v2.functional`` on float images (formulas in their
docstrings), computed in float32 like torch. ``augment_view`` chains them as a parameter vector
(``photometric_params.py``) says, on one uint8 view. Every whole-image pass is compiled for
512-bit vectors where the CPU has them (``vector_width.py``).
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
from .vector_width import wide_vectors

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
GRAY_R = np.float32(0.2989)
GRAY_G = np.float32(0.587)
GRAY_B = np.float32(0.114)

# Blur taps whose weight is below this fraction of the centre weight are dropped:
# exp(-d^2 / (2 sigma^2)) < 1e-4  <=>  d > sigma * sqrt(2 ln 1e4), about 4.3 sigma. Together
# they weigh at most 1.9e-4 of the kernel (sigma 0.1-2, any side), under 0.05 of a grey level
# per pass; at sigma = 2 they are 6 of 23 taps, and the augment is a tenth cheaper.
_TAP_CUTOFF = math.sqrt(2.0 * math.log(1e4))


# --- functional forms (float32 planes 3 x H x W, values in [0, 1], in place) --------------------
@jit(inline='always')
def _clamp01(x):
    return min(max(x, np.float32(0.0)), np.float32(1.0))


@jit(inline='always')
def _luma(r, g, b):
    """ITU-R 601-2 luma ``0.2989 r + 0.587 g + 0.114 b``, as torchvision's rgb_to_grayscale."""
    return GRAY_R * r + GRAY_G * g + GRAY_B * b


@jit(inline='always')
def _rgb_planes(planes):
    """The three planes of ``3 x H x W`` floats, each flat."""
    return planes[0].reshape(-1), planes[1].reshape(-1), planes[2].reshape(-1)


@jit
def adjust_brightness(planes, f):
    """``x <- clamp(f * x, 0, 1)``; torchvision ``adjust_brightness``."""
    wide_vectors()
    flat = planes.reshape(-1)
    a = np.float32(f)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j])


@jit
def gray_mean(planes):
    """Mean over pixels of the luma ``0.2989 r + 0.587 g + 0.114 b``: each pixel's in float32,
    as torchvision's ``rgb_to_grayscale`` makes it, summed in float64."""
    wide_vectors()
    r, g, b = _rgb_planes(planes)
    total = 0.0
    for p in range(r.shape[0]):
        total += _luma(r[p], g[p], b[p])
    return total / max(r.shape[0], 1)


@jit
def adjust_contrast(planes, f):
    """``x <- clamp(f * x + (1 - f) * m, 0, 1)`` with ``m`` the mean of the grayscale image;
    torchvision ``adjust_contrast`` (``_blend(image, mean(rgb_to_grayscale(image)), f)``)."""
    wide_vectors()
    m = gray_mean(planes)
    a = np.float32(f)
    c = np.float32((1.0 - f) * m)
    flat = planes.reshape(-1)
    for j in range(flat.shape[0]):
        flat[j] = _clamp01(a * flat[j] + c)


@jit
def adjust_saturation(planes, f):
    """``x <- clamp(f * x + (1 - f) * gray, 0, 1)`` per pixel, ``gray = 0.2989 r + 0.587 g +
    0.114 b``; torchvision ``adjust_saturation``."""
    wide_vectors()
    r, g, b = _rgb_planes(planes)
    a = np.float32(f)
    c = np.float32(1.0 - f)
    for p in range(r.shape[0]):
        gray = c * _luma(r[p], g[p], b[p])
        r[p] = _clamp01(a * r[p] + gray)
        g[p] = _clamp01(a * g[p] + gray)
        b[p] = _clamp01(a * b[p] + gray)


@jit(inline='always')
def _hue_channel(mx, d, h6, n):
    """HSV -> RGB for one channel, branch-free: ``v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 h) mod 6`` (n = 5, 3, 1 for r, g, b) and ``v s = max - min``. No clamp to
    [0, 1] is needed: with ``0 <= d <= max <= 1`` and the weight in [0, 1], ``max - d w`` lies
    in [0, max], rounded or not (one channel in three gets a weight of 0 and keeps ``max``)."""
    k = n + h6
    k = k - np.float32(6.0) * np.floor(k * np.float32(1.0 / 6.0))
    w = min(max(min(k, np.float32(4.0) - k), np.float32(0.0)), np.float32(1.0))
    return mx - d * w


@jit
def adjust_hue(planes, h):
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
    wide_vectors()
    red, green, blue = _rgb_planes(planes)
    shift = np.float32(6.0 * h)
    # max(d, tiny) instead of a zero test keeps the loop branch-free; d == 0 gives num == 0 and an
    # output of exactly ``max``.
    tiny = np.float32(1e-30)
    for p in range(red.shape[0]):
        r = red[p]
        g = green[p]
        b = blue[p]
        mx = max(r, max(g, b))
        mn = min(r, min(g, b))
        d = mx - mn
        num = (g - b) if mx == r else ((np.float32(2.0) * d + b - r) if mx == g
                                       else (np.float32(4.0) * d + r - g))
        h6 = num / max(d, tiny) + shift
        red[p] = _hue_channel(mx, d, h6, np.float32(5.0))
        green[p] = _hue_channel(mx, d, h6, np.float32(3.0))
        blue[p] = _hue_channel(mx, d, h6, np.float32(1.0))


@jit
def kept_radius(sigma, ksize):
    """Taps kept on each side of the blur kernel's centre."""
    return min(ksize // 2, int(sigma * _TAP_CUTOFF))


@jit
def gaussian_kernel_half(sigma, ksize):
    """Half of the 1-D kernel, float32 ``w[0..r_eff]`` (``w[0]`` the centre), normalised over the
    kept taps. torchvision: ``x = linspace(-(k-1)/2, (k-1)/2, k)``, ``w = exp(-0.5 (x/sigma)^2)``
    normalised; taps below 1e-4 of the centre are dropped (their total is < 2e-4)."""
    keep = kept_radius(sigma, ksize)
    w = np.empty(keep + 1, dtype=np.float64)
    total = 0.0
    for t in range(keep + 1):
        w[t] = math.exp(-0.5 * (t / sigma) ** 2)
        total += w[t] if t == 0 else 2.0 * w[t]
    return (w / total).astype(np.float32)


# A vector load or store that straddles two cache lines costs two accesses, and at 512 bits
# every one off a line boundary does; NumPy aligns arrays to 16 bytes only.
CACHE_LINE = 64


@jit
def aligned_floats(count, at=0):
    """Uninitialised float32 array of ``count`` elements whose element ``at`` starts a 64-byte
    cache line."""
    raw = np.empty(count + CACHE_LINE // 4, dtype=np.float32)
    skip = (-(raw.ctypes.data + 4 * at)) % CACHE_LINE // 4
    return raw[skip:skip + count]


@jit(inline='always')
def _reflect(i, n):
    """Index into [0, n) with reflect padding (no edge repeat, as torch's ``mode='reflect'``)."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


@jit
def blur_row(src, channels, w, y, pad, out):
    """Row ``y`` of the blurred image into ``out``: ``src`` is H x n floats (``channels``
    interleaved per pixel), ``w`` the kernel half (``gaussian_kernel_half``), reflect padding;
    ``pad``: float32 scratch of ``n + 2 r channels``.

    The vertical pass sums the 2 r + 1 rows around ``y`` into the middle of ``pad``, the row is
    reflect-padded there and the horizontal pass reads it back, so a row is finished while it
    is in L1 and the image is read once. Both passes add two taps per sweep over the row: one
    store per two taps instead of one per tap. A 2-D conv with the outer product of the 1-D
    kernel on a reflect-padded image equals this vertical then horizontal pass."""
    wide_vectors()
    H, n = src.shape
    r = w.shape[0] - 1
    lo = r * channels
    centre = pad[lo:lo + n]
    one = min(r, 1)  # tap 1, or the centre when there is none (then it is not read)
    # vertical: taps are the rows t above and below y, reflected at the image's edges
    t = _first_taps(centre, src[y], w, src[_reflect(y - one, H)], src[_reflect(y + one, H)])
    while t < r:
        _add_two_taps(centre, w[t], src[_reflect(y - t, H)], src[_reflect(y + t, H)],
                      w[t + 1], src[_reflect(y - t - 1, H)], src[_reflect(y + t + 1, H)])
        t += 2
    for t in range(1, r + 1):
        for c in range(channels):
            pad[lo - t * channels + c] = pad[lo + t * channels + c]
            pad[lo + n - channels + t * channels + c] = pad[lo + n - channels - t * channels + c]
    # horizontal: taps are the padded row shifted by t pixels either way
    step = channels
    a = one * step
    t = _first_taps(out, centre, w, pad[lo - a:lo - a + n], pad[lo + a:lo + a + n])
    while t < r:
        a = t * step
        b = a + step
        _add_two_taps(out, w[t], pad[lo - a:lo - a + n], pad[lo + a:lo + a + n],
                      w[t + 1], pad[lo - b:lo - b + n], pad[lo + b:lo + b + n])
        t += 2


@jit(inline='always')
def _first_taps(out, middle, w, before, after):
    """``out = w[0] middle``, plus tap 1 when the taps beyond the centre are odd in number (the
    rest then pair up); returns the next tap."""
    w0 = w[0]
    if (w.shape[0] - 1) % 2 == 1:
        w1 = w[1]
        for j in range(out.shape[0]):
            out[j] = w0 * middle[j] + w1 * (before[j] + after[j])
        return 2
    for j in range(out.shape[0]):
        out[j] = w0 * middle[j]
    return 1


@jit(inline='always')
def _add_two_taps(out, w1, before1, after1, w2, before2, after2):
    for j in range(out.shape[0]):
        out[j] += w1 * (before1[j] + after1[j]) + w2 * (before2[j] + after2[j])


@jit
def blur_pad(n, channels, w):
    """``blur_row``'s ``pad`` for rows of ``n`` floats and the kernel half ``w``: ``n + 2 r
    channels`` floats, the middle ``n`` (where the vertical sums go) starting a cache line."""
    lo = (w.shape[0] - 1) * channels
    return aligned_floats(n + 2 * lo, lo)


@jit
def blur_kernel(sigma, ksize, height, width):
    """``gaussian_kernel_half(sigma, ksize)``, checked against the image side: reflect padding
    needs a radius smaller than both sides."""
    w = gaussian_kernel_half(sigma, ksize)
    if w.shape[0] - 1 >= height or w.shape[0] - 1 >= width:
        raise ValueError('blur kernel radius must be smaller than the image side')
    return w


@jit
def gaussian_blur(img, sigma, ksize, out):
    """Separable Gaussian blur of ``img`` into ``out`` (float32 H x W x 3 each), reflect
    padding; torchvision ``gaussian_blur(kernel_size=[k, k], sigma=[sigma, sigma])``."""
    H, W, _ = img.shape
    w = blur_kernel(sigma, ksize, H, W)
    src = img.reshape(H, W * 3)
    dst = out.reshape(H, W * 3)
    pad = blur_pad(W * 3, 3, w)
    for y in range(H):
        blur_row(src, 3, w, y, pad, dst[y])


# --- one view -----------------------------------------------------------------------------------
@jit
def aligned_image(height, width):
    """Uninitialised float32 ``height x width x 3`` scratch image starting a cache line (each
    row of a 224 px image then does too: 224 x 3 floats are 42 lines)."""
    return aligned_floats(height * width * 3).reshape((height, width, 3))


@jit
def to_planes(view, planes):
    """uint8 H x W x 3 -> float32 planes ``3 x H x W`` of ``x / 255``."""
    wide_vectors()
    src = view.reshape(-1)
    r, g, b = _rgb_planes(planes)
    for p in range(r.shape[0]):
        r[p] = np.float32(src[3 * p]) / np.float32(255.0)
        g[p] = np.float32(src[3 * p + 1]) / np.float32(255.0)
        b[p] = np.float32(src[3 * p + 2]) / np.float32(255.0)


@jit(inline='always')
def _to_byte(x):
    """float32 [0, 1] -> uint8 ``round(255 x)`` (half up), clamped."""
    y = x * np.float32(255.0) + np.float32(0.5)
    return np.uint8(min(max(y, np.float32(0.0)), np.float32(255.0)))


@jit
def planes_to_view(planes, view):
    """float32 planes [0, 1] -> the uint8 H x W x 3 ``view``, ``round(255 x)`` (half up),
    clamped."""
    wide_vectors()
    dst = view.reshape(-1)
    r, g, b = _rgb_planes(planes)
    for p in range(r.shape[0]):
        dst[3 * p] = _to_byte(r[p])
        dst[3 * p + 1] = _to_byte(g[p])
        dst[3 * p + 2] = _to_byte(b[p])


@jit
def planes_to_pixels(planes, pixels):
    """float32 planes ``3 x H x W`` -> interleaved float32 ``pixels`` (H x W x 3), for the
    blur."""
    wide_vectors()
    dst = pixels.reshape(-1)
    r, g, b = _rgb_planes(planes)
    for p in range(r.shape[0]):
        dst[3 * p] = r[p]
        dst[3 * p + 1] = g[p]
        dst[3 * p + 2] = b[p]


@jit
def gray_plane(planes, plane):
    """``plane <- 0.2989 r + 0.587 g + 0.114 b`` (3 x H x W -> H x W); torchvision
    ``rgb_to_grayscale``, one channel (no clamp needed: weights sum to 0.9999)."""
    wide_vectors()
    r, g, b = _rgb_planes(planes)
    out = plane.reshape(-1)
    for p in range(out.shape[0]):
        out[p] = _luma(r[p], g[p], b[p])


@jit
def plane_to_view(plane, view):
    """A float32 gray ``plane`` [0, 1] rounded into all three channels of the uint8 ``view``."""
    wide_vectors()
    src = plane.reshape(-1)
    dst = view.reshape(-1)
    for x in range(src.shape[0]):
        v = _to_byte(src[x])
        dst[3 * x] = v
        dst[3 * x + 1] = v
        dst[3 * x + 2] = v


@jit
def blur_to_view(src, channels, w, view):
    """Blur ``src`` (H x W * ``channels`` float32; ``channels`` 3, or 1 for a gray plane that
    goes to all three) with the kernel half ``w`` and write it rounded into the uint8 ``view``
    row by row."""
    wide_vectors()
    H, n = src.shape
    pad = blur_pad(n, channels, w)
    row = aligned_floats(n)
    for y in range(H):
        blur_row(src, channels, w, y, pad, row)
        if channels == 3:
            dst = view[y].reshape(-1)
            for j in range(n):
                dst[j] = _to_byte(row[j])
        else:
            plane_to_view(row, view[y])


@jit
def apply_jitter(planes, params):
    """The colour jitter ops (if P_JITTER) in P_ORDER on float32 ``planes``, in place; identity
    factors are skipped, as torchvision skips them."""
    if params[P_JITTER] == 0.0:
        return
    for k in range(4):
        op = int(params[P_ORDER + k])
        if op == OP_BRIGHTNESS:
            if params[P_BRIGHTNESS] != 1.0:
                adjust_brightness(planes, params[P_BRIGHTNESS])
        elif op == OP_CONTRAST:
            if params[P_CONTRAST] != 1.0:
                adjust_contrast(planes, params[P_CONTRAST])
        elif op == OP_SATURATION:
            if params[P_SATURATION] != 1.0:
                adjust_saturation(planes, params[P_SATURATION])
        else:
            if params[P_HUE] != 0.0:
                adjust_hue(planes, params[P_HUE])


@jit
def _blurs(params, ksize):
    """Whether the view's blur changes it: drawn, and keeping more than its centre tap (a
    kernel of one tap, below sigma = 1 / 4.3, weighs 1 and leaves every value as it is)."""
    return params[P_BLUR] != 0.0 and kept_radius(params[P_SIGMA], ksize) > 0


@jit
def augment_view(view, params, ksize, buf, scratch):
    """Augment one uint8 H x W x 3 view in place: the jitter ops (if P_JITTER) in P_ORDER, then
    grayscale (if P_GRAY), then blur (if P_BLUR), in float32 (``buf``, ``scratch``: float32
    scratch of H x W x 3 floats each), rounded back once. A view with no op applied is left
    untouched.

    The colours are changed as planes in ``buf``; the blur reads them interleaved from
    ``scratch`` and writes its rows straight into the view. A grayscale view is one plane
    (its three channels are equal), blurred as one and written to all three."""
    gray = params[P_GRAY] != 0.0
    blur = _blurs(params, ksize)
    if params[P_JITTER] == 0.0 and not gray and not blur:
        return
    H, W, _ = view.shape
    planes = buf.reshape(-1).reshape(3, H, W)
    to_planes(view, planes)
    apply_jitter(planes, params)
    if gray:
        plane = scratch.reshape(-1)[:H * W].reshape(H, W)
        gray_plane(planes, plane)
        if blur:
            blur_to_view(plane, 1, blur_kernel(params[P_SIGMA], ksize, H, W), view)
        else:
            plane_to_view(plane, view)
    elif blur:
        pixels = scratch.reshape(-1).reshape(H, W * 3)
        planes_to_pixels(planes, pixels)
        blur_to_view(pixels, 3, blur_kernel(params[P_SIGMA], ksize, H, W), view)
    else:
        planes_to_view(planes, view)


# What a view's ops cost, in microseconds for a 224 px view on the 2-core Intel Xeon VM
# (least squares over 1024 MoCo v2 views, correlation 0.96 with the measured times): only
# to take a batch's costliest samples first, so only their ratios matter.
_JITTER_COST = 85.0
_BLUR_COST = 23.0
_BLUR_TAP_COST = 6.4


@jit
def estimated_cost(params, ksize):
    """Estimated cost of :func:`augment_view` with ``params``, for
    :func:`loaders.work_sharing.costliest_first`."""
    cost = _JITTER_COST * params[P_JITTER]
    if _blurs(params, ksize):
        cost += _BLUR_COST + _BLUR_TAP_COST * (2 * kept_radius(params[P_SIGMA], ksize) + 1)
    return cost
