"""Input normalisation shared by training and evaluation: ImageNet mean/std (MoCo's recipe)."""
import functools

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def _statistics(device, dtype):
    # Made once per device: a fresh host->GPU copy every step would be a synchronising memcpy.
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, 3, 1, 1)
    return mean, std


def to_unit_float(images_bhwc_uint8):
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return images_bhwc_uint8.movedim(-1, -3).float().div_(255.0)


def normalize(x, memory_format=torch.channels_last):
    """float (B, 3, H, W) in [0, 1] -> ImageNet-normalised, in ``memory_format``."""
    mean, std = _statistics(x.device, x.dtype)
    return ((x - mean) / std).contiguous(memory_format=memory_format)
