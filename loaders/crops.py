"""RandomResizedCrop box sampling with torchvision's exact semantics, in Numba.

Mirrors ``torchvision.transforms.RandomResizedCrop.get_params``: up to 10 tries of
(area fraction ~ U(scale), log aspect ~ U(log ratio)), w/h rounded half-to-even like Python's
``round``, position uniform over the valid range; then the central fallback crop. The
region (``region_h`` x ``region_w``) is the whole image for plain MoCo and a (tracked or
annotated) box for box-conditioned crops; the caller adds the region's offset.
"""
import math

import numpy as np

from .jit import jit
from .rng import next_int, next_uniform


@jit(inline='always')
def _round_half_even(x):
    return int(np.rint(x))


@jit(cache=True)
def sample_resized_crop(state, region_h, region_w, scale_min, scale_max, log_ratio_min,
                        log_ratio_max):
    """Return (state, top, left, h, w) of one crop inside a region_h x region_w region."""
    area = region_h * region_w
    for _ in range(10):
        state, u_area = next_uniform(state)
        state, u_ratio = next_uniform(state)
        target_area = area * (scale_min + (scale_max - scale_min) * u_area)
        aspect = math.exp(log_ratio_min + (log_ratio_max - log_ratio_min) * u_ratio)
        w = _round_half_even(math.sqrt(target_area * aspect))
        h = _round_half_even(math.sqrt(target_area / aspect))
        if 0 < w <= region_w and 0 < h <= region_h:
            state, top = next_int(state, region_h - h + 1)
            state, left = next_int(state, region_w - w + 1)
            return state, top, left, h, w
    in_ratio = region_w / region_h
    ratio_min = math.exp(log_ratio_min)
    ratio_max = math.exp(log_ratio_max)
    # At least 1 px: the side rounds to 0 when region_w / ratio_min or region_h * ratio_max is
    # under half a pixel (a thin region, a far ratio); torchvision then fails, ours gave black
    if in_ratio < ratio_min:
        w = region_w
        h = max(_round_half_even(w / ratio_min), 1)
    elif in_ratio > ratio_max:
        h = region_h
        w = max(_round_half_even(h * ratio_max), 1)
    else:
        w = region_w
        h = region_h
    return state, (region_h - h) // 2, (region_w - w) // 2, h, w
