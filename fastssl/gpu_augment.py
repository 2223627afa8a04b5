"""MoCo v2 photometric augmentation, batched in torch (GPU placement; also runs on CPU).

Same semantics and the same parameters as the CPU op (``loaders/photometric.py``, its Numba
kernels in ``loaders/photometric_kernels.py``): the parameters of a batch come from
``loaders.photometric_params.photometric_params(seed, epoch, indices, n_views, strengths)``,
so a sample gets identical draws in either placement. Here they are applied to a float batch
``(N, 3, H, W)`` in [0, 1] with no Python loop over samples and no host-device synchronisation
(no ``.item()``, boolean indexing or ``.nonzero()``):

* the random jitter order: the three blend ops (brightness, contrast, saturation) share one
  fused blend ``clamp(f x + (1 - f) ref)`` with a per-sample factor and reference (0, the
  grayscale mean, or the per-pixel gray), ``f = 1`` (exactly the identity) where a sample's
  op at that position is another or jitter is off; as hue holds one position of every
  sample's order, the blends before it run at positions 0-2, the hue once (``torch.where``
  on jitter), the blends after it at positions 1-3;
* grayscale via ``torch.where``; blur via per-sample separable kernels with a grouped conv on a
  reflect-padded batch, blended in via ``torch.where``.

Functional forms take per-sample parameter tensors of shape (N,) and mirror
``torchvision.transforms.v2.functional`` on float images (formulas in their docstrings).
Outputs keep the input's memory format (channels_last stays channels_last).
"""

import numpy as np
import torch
import torch.nn.functional as F

from loaders.photometric_params import (
    NUM_PARAMS,
    OP_BRIGHTNESS,
    OP_CONTRAST,
    OP_HUE,
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
    blur_kernel_size,
    make_strengths,
    photometric_params,
)

__all__ = ['GPUPhotometric', 'adjust_brightness', 'adjust_contrast', 'adjust_saturation',
           'adjust_hue', 'rgb_to_grayscale', 'gaussian_blur', 'apply_photometric',
           'params_to_device', 'NUM_PARAMS']

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2, as torchvision


def _per_sample(v, x):
    """(N,) parameter -> (N, 1, 1, 1) in x's dtype/device."""
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)


def _keep_format(out, x):
    """Return ``out`` in ``x``'s memory format (a copy only if the layouts differ)."""
    if (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def _gray(x):
    """(N, 1, H, W): ``0.2989 r + 0.587 g + 0.114 b``."""
    r, g, b = x.unbind(dim=1)
    return (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]).unsqueeze(1)


def _blend(x, ref, f):
    """torchvision ``_blend``: ``clamp(f x + (1 - f) ref, 0, 1)``; f (N, 1, 1, 1)."""
    return (x * f + ref * (1.0 - f)).clamp_(0.0, 1.0)


def adjust_brightness(x, f):
    """``clamp(f x, 0, 1)`` per sample; torchvision ``adjust_brightness``. f: (N,)."""
    return _keep_format((x * _per_sample(f, x)).clamp_(0.0, 1.0), x)


def adjust_contrast(x, f):
    """``clamp(f x + (1 - f) m, 0, 1)``, m the per-sample mean of the grayscale image;
    torchvision ``adjust_contrast``. f: (N,)."""
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _keep_format(_blend(x, mean, _per_sample(f, x)), x)


def adjust_saturation(x, f):
    """``clamp(f x + (1 - f) gray, 0, 1)`` per pixel; torchvision ``adjust_saturation``. f: (N,)."""
    return _keep_format(_blend(x, _gray(x), _per_sample(f, x)), x)


def adjust_hue(x, h):
    """Rotate hue by ``h`` (N,) (fraction of the circle); torchvision ``adjust_hue``.

    Same closed form as the Numba op: hue in sixths from the max channel (r before g before b,
    as torchvision's ``_rgb_to_hsv``), ``k = (n + 6 hue + 6 h) mod 6`` for n = 5, 3, 1 and
    ``out = max - (max - min) clamp(min(k, 4 - k), 0, 1)``, which equals ``_hsv_to_rgb``'s
    v/p/q/t selection. Gray pixels are unchanged.
    """
    r, g, b = x.unbind(dim=1)
    mx, _ = x.max(dim=1)
    mn, _ = x.min(dim=1)
    d = mx - mn
    num = torch.where(mx == r, g - b, torch.where(mx == g, 2.0 * d + b - r, 4.0 * d + r - g))
    # clamp_min instead of a zero test: d == 0 gives num == 0 and an output of exactly ``max``
    h6 = num / d.clamp_min(torch.finfo(x.dtype).tiny) + _per_sample(h, x).reshape(-1, 1, 1) * 6.0
    # channel offsets n = 5, 3, 1 built on the device (no host -> device copy)
    offsets = (5.0 - 2.0 * torch.arange(3, dtype=x.dtype, device=x.device)).reshape(1, 3, 1, 1)
    k = torch.remainder(h6.unsqueeze(1) + offsets, 6.0)
    w = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    out = (mx.unsqueeze(1) - d.unsqueeze(1) * w).clamp_(0.0, 1.0)
    return _keep_format(out, x)


def rgb_to_grayscale(x):
    """``0.2989 r + 0.587 g + 0.114 b`` replicated to 3 channels; torchvision
    ``rgb_to_grayscale(num_output_channels=3)``."""
    return _keep_format(_gray(x).expand_as(x).clone(memory_format=torch.preserve_format), x)


def gaussian_kernels(sigma, ksize, dtype=torch.float32):
    """(N, ksize) normalised 1-D kernels: torchvision's ``exp(-0.5 (x / sigma)^2)`` with
    ``x = linspace(-(k-1)/2, (k-1)/2, k)``."""
    radius = (ksize - 1) / 2
    xs = torch.linspace(-radius, radius, ksize, device=sigma.device, dtype=torch.float64)
    w = torch.exp(-0.5 * (xs.unsqueeze(0) / sigma.to(torch.float64).unsqueeze(1)) ** 2)
    return (w / w.sum(dim=1, keepdim=True)).to(dtype)


def gaussian_blur(x, sigma, ksize):
    """Per-sample separable Gaussian blur (sigma (N,), odd ``ksize``), reflect padding;
    torchvision ``gaussian_blur(kernel_size=[k, k], sigma=[s, s])``. A grouped conv with one
    group per (sample, channel): vertical then horizontal pass, each on a reflect-padded input."""
    if ksize % 2 == 0 or ksize < 1:
        raise ValueError(f'ksize must be odd and positive, got {ksize}')
    n, c, h, w = x.shape
    r = ksize // 2
    if r == 0:
        return x.clone()
    kern = gaussian_kernels(sigma.to(x.device), ksize, x.dtype)  # (N, k)
    kern = kern.repeat_interleave(c, dim=0)  # (N*C, k)
    y = x.contiguous().reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode='reflect'), kern.reshape(n * c, 1, ksize, 1),
                 groups=n * c)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode='reflect'), kern.reshape(n * c, 1, 1, ksize),
                 groups=n * c)
    return _keep_format(y.reshape(n, c, h, w), x)


def params_to_device(params, device):
    """numpy / tensor (N, NUM_PARAMS) -> float64 tensor on ``device`` (pinned, non-blocking)."""
    if isinstance(params, np.ndarray):
        params = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float64))
    device = torch.device(device)
    if device.type == 'cuda' and params.device.type == 'cpu':
        params = params.pin_memory()
    return params.to(device=device, non_blocking=True)


def mask4(mask):
    """(B,) bool -> (B, 1, 1, 1): broadcast over channels and pixels."""
    return mask.reshape(-1, 1, 1, 1)


def _blend_at(x, params, op, selected):
    """The blend op (brightness, contrast or saturation) at one position of the jitter order,
    for the ``selected`` (N,) samples: one fused blend ``clamp(f x + (1 - f) ref)``, f = 1
    (exactly the identity) where not selected or where the position holds hue."""
    f = torch.ones_like(op)
    for op_id, p_factor in ((OP_BRIGHTNESS, P_BRIGHTNESS), (OP_CONTRAST, P_CONTRAST),
                            (OP_SATURATION, P_SATURATION)):
        f = torch.where(selected & (op == op_id), params[:, p_factor], f)
    gray = _gray(x)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    ref = torch.where(mask4(op == OP_BRIGHTNESS), torch.zeros_like(mean),
                      torch.where(mask4(op == OP_CONTRAST), mean, gray))
    return _blend(x, ref, _per_sample(f, x))


def apply_photometric(x, params, ksize=None):
    """Apply per-sample parameters ``params`` (N, NUM_PARAMS) to ``x`` (N, 3, H, W), float in
    [0, 1]: jitter (if P_JITTER) in P_ORDER, grayscale (if P_GRAY), blur (if P_BLUR). Returns a
    new tensor in x's memory format. ``ksize``: odd blur kernel side, default
    ``blur_kernel_size(H, W)``."""
    if not x.is_floating_point():
        raise TypeError('apply_photometric expects a float batch in [0, 1]')
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f'expected (N, 3, H, W), got {tuple(x.shape)}')
    params = params_to_device(params, x.device)
    if params.shape != (x.shape[0], NUM_PARAMS):
        raise ValueError(f'params must be ({x.shape[0]}, {NUM_PARAMS}), got {tuple(params.shape)}')
    x_in = x
    n, _, h, w = x.shape
    if ksize is None:
        ksize = blur_kernel_size(h, w)
    jitter = params[:, P_JITTER] != 0
    order = params[:, P_ORDER:P_ORDER + 4]
    # hue is at one position of every sample's order: the blends before it (positions 0-2),
    # the hue once, the blends after it (positions 1-3), each identity where it does not apply;
    # hue at each of the four positions would cost four hue passes over the batch
    hue_position = torch.argmax((order == OP_HUE).to(order.dtype), dim=1)
    for pos in range(3):
        x = _blend_at(x, params, order[:, pos], jitter & (hue_position > pos))
    x = torch.where(mask4(jitter), adjust_hue(x, params[:, P_HUE]), x)
    for pos in range(1, 4):
        x = _blend_at(x, params, order[:, pos], jitter & (hue_position < pos))
    x = torch.where(mask4(params[:, P_GRAY] != 0), _gray(x), x)
    if ksize > 1:
        blurred = gaussian_blur(x, params[:, P_SIGMA], ksize)
        x = torch.where(mask4(params[:, P_BLUR] != 0), blurred, x)
    return _keep_format(x, x_in)


class GPUPhotometric:
    """MoCo v2 photometric augment on device batches, with the CPU op's per-sample draws.

    ``GPUPhotometric(seed, blur_kernel=None, **strength_kwargs)``; strength kwargs as
    ``make_strengths`` (brightness, contrast, saturation, hue, p_jitter, p_gray, p_blur,
    sigma_min, sigma_max; MoCo v2 defaults).
    """

    def __init__(self, seed=0, blur_kernel=None, **strength_kwargs):
        self.seed = int(seed)
        self.strengths = make_strengths(**strength_kwargs)
        if blur_kernel is not None and (blur_kernel < 1 or blur_kernel % 2 == 0):
            raise ValueError('blur_kernel must be a positive odd integer')
        self.blur_kernel = blur_kernel

    def params(self, indices, epoch, n_views):
        """float64 numpy (B, n_views, NUM_PARAMS) for dataset indices ``indices``."""
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()  # loader indices live on the host
        return photometric_params(self.seed, epoch, indices, n_views, self.strengths)

    def __call__(self, x, params):
        """Augment ``x`` (N, 3, H, W) float in [0, 1] with ``params`` (N, NUM_PARAMS)."""
        return apply_photometric(x, params, self.blur_kernel)

    def augment_views(self, views, indices, epoch):
        """``views``: sequence of V batches (B, 3, H, W), view v of sample b in ``views[v][b]``;
        ``indices`` (B,) dataset indices (host). Returns the V augmented batches."""
        params = self.params(indices, epoch, len(views))
        return [self(v, params[:, k]) for k, v in enumerate(views)]
