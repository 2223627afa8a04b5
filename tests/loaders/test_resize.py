"""The fused resize+flip matches torchvision's antialiased resized_crop."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F
from skimage import data

from loaders.resize import resize_crop_flip, resize_view, upscale_crop_flip


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


def test_upscale_crop_flip_equals_torchvision_and_the_base_resize():
    """The horizontal-first order gives torchvision's antialiased
    resized_crop (+ flip) and the base op's resize up to float order: upscales in both axes,
    mixed (upscale rows, downscale columns), boxes at the edges, fractional (DCT-scaled) boxes
    and a 1-row crop."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), np.uint8)
    image[20:60, 30:90] = rng.integers(0, 2, (40, 60, 1), np.uint8) * 255  # hard edges
    frame = torch.from_numpy(image).permute(2, 0, 1).float()
    cases = [(0, 0, 90, 120, 112, 112), (20, 30, 35, 47, 64, 64), (70, 100, 20, 20, 48, 48),
             (10, 0, 30, 120, 40, 56), (5, 7, 1, 9, 16, 16), (33, 41, 17, 3, 24, 24)]
    for top, left, h, w, out_h, out_w in cases:
        for flip in (False, True):
            ours = np.empty((out_h, out_w, 3), np.uint8)
            base = np.empty_like(ours)
            upscale_crop_flip(image, float(top), float(left), float(h), float(w), flip, ours)
            resize_crop_flip(image, float(top), float(left), float(h), float(w), flip, base)
            ref = F.resized_crop(frame, top, left, h, w, [out_h, out_w], antialias=True)
            ref = F.horizontal_flip(ref) if flip else ref
            assert np.abs(ours - ref.permute(1, 2, 0).numpy()).max() <= 0.51, (top, left, h, w)
            assert np.abs(ours.astype(int) - base).max() <= 1
    scaled, base = np.empty((32, 32, 3), np.uint8), np.empty((32, 32, 3), np.uint8)
    half = image[::2, ::2].copy()
    upscale_crop_flip(half, 10.5, 7.5, 12.5, 20.0, True, scaled)
    resize_crop_flip(half, 10.5, 7.5, 12.5, 20.0, True, base)
    assert np.abs(scaled.astype(int) - base).max() <= 1


def test_resize_view_takes_the_horizontal_first_order_for_boxes_shorter_than_the_output():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 300, 3), np.uint8)
    differ = {True: 0, False: 0}   # views where the two orders round differently, by h < 224
    for top, left, h, w in [(10.0, 20.0, 150.0, 170.0), (0.0, 0.0, 223.5, 300.0),
                            (40.0, 30.0, 230.0, 100.0), (5.0, 9.0, 260.0, 240.0)]:
        for flip in (False, True):
            ours, up, down = (np.empty((224, 224, 3), np.uint8) for _ in range(3))
            resize_view(image, top, left, h, w, flip, ours)
            upscale_crop_flip(image, top, left, h, w, flip, up)
            resize_crop_flip(image, top, left, h, w, flip, down)
            assert np.array_equal(ours, up if h < 224 else down), (h, flip)
            differ[h < 224] += not np.array_equal(up, down)
    assert differ[True] and differ[False]
