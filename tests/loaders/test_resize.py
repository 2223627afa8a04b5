"""The fused resize+flip matches torchvision's antialiased resized_crop."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F
from skimage import data

from loaders.resize import resize_crop_flip


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize('box', [(10, 20, 260, 270), (0, 0, 400, 400), (50, 60, 150, 180),
                                 (100, 3, 297, 211), (5, 7, 40, 30)])
@pytest.mark.parametrize('flip', [False, True])
def test_matches_torchvision_antialiased_resized_crop(box, flip):
    from PIL import Image
    image = np.array(Image.fromarray(data.astronaut()).resize((400, 400)))
    top, left, h, w = box
    dst = np.empty((112, 128, 3), np.uint8)
    resize_crop_flip(image, top, left, h, w, flip, dst)
    ref = F.resized_crop(torch.from_numpy(image).permute(2, 0, 1).float(), top, left, h, w,
                         [112, 128], antialias=True)
    if flip:
        ref = F.horizontal_flip(ref)
    ref = ref.permute(1, 2, 0).numpy()
    assert np.abs(dst - ref).max() <= 0.51  # rounding of the float result only
    assert psnr(dst, ref.round()) > 50
