"""Edges of the loaders' Numba kernels: crop boxes the samplers draw in thin regions, float
boxes at the image's borders, and tiny sources and outputs against torchvision."""
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F

from loaders.multiview_decoder import draw_views
from loaders.resize import resize_crop_flip, resize_view, upscale_crop_flip


@pytest.mark.parametrize('region_h, region_w, ratio', [(2, 1, (3.0, 10.0)),
                                                       (1, 400, (0.1, 0.3)),
                                                       (79, 1, (3.0, 10.0))])
def test_a_thin_region_with_a_far_aspect_range_gives_a_box_of_its_pixels(region_h, region_w,
                                                                         ratio):
    """No sampled box fits, and the fallback rounded to an empty box: a black view (a tracked
    box a pixel or two wide, with augment.crop_ratio_* far from 1)."""
    frame = np.full((100, 500, 3), 255, np.uint8)
    boxes, flips = np.empty((2, 4), np.int64), np.empty(2, np.bool_)
    view = np.empty((32, 32, 3), np.uint8)
    for index in range(20):
        draw_views(0, 0, index, 0, 10, 20, region_h, region_w, 0.5, 1.0, math.log(ratio[0]),
                   math.log(ratio[1]), 0.5, boxes, flips)
        for top, left, h, w in boxes:
            assert 1 <= h <= region_h and 1 <= w <= region_w, (index, h, w)
            assert 10 <= top <= 10 + region_h - h and 20 <= left <= 20 + region_w - w
            resize_view(frame, float(top), float(left), float(h), float(w), False, view)
            assert (view == 255).all()


@pytest.mark.parametrize('resize', [resize_crop_flip, upscale_crop_flip])
def test_a_box_starting_a_fraction_above_the_image_reads_only_the_image(resize):
    """Taps are clipped to the image at the top and left as at the bottom and right: row -1
    was read as the image's last row (columns: memory outside the row)."""
    image = np.zeros((8, 8, 3), np.uint8)
    image[:4] = 255                        # white above, black below
    out = np.empty((8, 8, 3), np.uint8)
    resize(image, -0.5, 0.0, 8.0, 8.0, False, out)
    assert (out[0] == 255).all()           # before: 128, half the black last row
    image = np.ascontiguousarray(image.transpose(1, 0, 2))   # white left, black right
    resize(image, 0.0, -0.5, 8.0, 8.0, True, out)
    assert (out[:, -1] == 255).all()


@pytest.mark.parametrize('shape, box, size', [
    ((1, 1, 3), (0, 0, 1, 1), (224, 224)), ((1, 9, 3), (0, 2, 1, 7), (3, 5)),
    ((9, 1, 3), (1, 0, 8, 1), (17, 2)), ((2, 2, 3), (0, 0, 2, 2), (1, 1)),
    ((16, 16, 3), (0, 0, 16, 16), (512, 512)), ((5, 400, 3), (1, 0, 1, 400), (3, 224)),
    ((400, 5, 3), (0, 3, 400, 1), (224, 3)), ((33, 47, 3), (20, 40, 13, 7), (64, 64))])
def test_tiny_sources_boxes_and_outputs_match_torchvision_whatever_the_buffer_held(shape, box,
                                                                                   size):
    """Boxes at every edge, of 1 px and of the whole image, strong up- and downscales: the
    antialiased resized_crop's pixels, flipped or not, into a buffer of 0s or 255s alike."""
    image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    top, left, h, w = box
    ref = F.resized_crop(torch.from_numpy(image).permute(2, 0, 1).float(), top, left, h, w,
                         list(size), antialias=True)
    for flip in (False, True):
        expected = (F.horizontal_flip(ref) if flip else ref).permute(1, 2, 0).numpy()
        outs = []
        for fill in (0, 255):
            out = np.full(size + (3,), fill, np.uint8)
            resize_view(image, float(top), float(left), float(h), float(w), flip, out)
            outs.append(out)
        assert np.array_equal(outs[0], outs[1])
        assert np.abs(outs[0] - expected).max() <= 0.51, (box, size, flip)
