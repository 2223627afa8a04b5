"""RandomResizedCrop boxes follow torchvision's distribution and fallback exactly."""
import math

import numpy as np
import torch
from numba import njit
from scipy.stats import ks_2samp
from torchvision.transforms import RandomResizedCrop

from loaders.crops import sample_resized_crop
from loaders.rng import STREAM_CROP, sample_state

LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


@njit
def draw_many(n, h, w):
    out = np.empty((n, 4), np.int64)
    for i in range(n):
        state = sample_state(0, 0, i, STREAM_CROP)
        _, top, left, ch, cw = sample_resized_crop(state, h, w, 0.2, 1.0, LOG_RATIO[0],
                                                   LOG_RATIO[1])
        out[i] = (top, left, ch, cw)
    return out


def torchvision_boxes(n, h, w):
    torch.manual_seed(0)
    image = torch.empty(3, h, w)
    return np.array([RandomResizedCrop.get_params(image, (0.2, 1.0), (3 / 4, 4 / 3))
                     for _ in range(n)])


def test_crop_statistics_match_torchvision():
    n, h, w = 6000, 300, 420
    ours, ref = draw_many(n, h, w), torchvision_boxes(n, h, w)
    for name, a, b in [
        ('area fraction', ours[:, 2] * ours[:, 3] / (h * w), ref[:, 2] * ref[:, 3] / (h * w)),
        ('log aspect', np.log(ours[:, 3] / ours[:, 2]), np.log(ref[:, 3] / ref[:, 2])),
        ('centre y', ours[:, 0] + ours[:, 2] / 2, ref[:, 0] + ref[:, 2] / 2),
        ('centre x', ours[:, 1] + ours[:, 3] / 2, ref[:, 1] + ref[:, 3] / 2),
    ]:
        assert ks_2samp(a, b).pvalue > 1e-3, name
        assert abs(a.mean() - b.mean()) < 0.05 * (abs(b.mean()) + b.std()), name
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= h).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= w).all()


def test_fallback_is_torchvisions_centre_crop():
    # A 10 x 400 strip: no sampled box fits, so both fall back to the same central crop.
    ours = draw_many(50, 10, 400)
    ref = torchvision_boxes(50, 10, 400)
    assert (ours == ref).all()
    assert tuple(ours[0]) == (0, (400 - 13) // 2, 10, 13)


def test_boxes_depend_only_on_seed_epoch_index():
    a, b = draw_many(100, 200, 300), draw_many(100, 200, 300)
    assert (a == b).all()
    assert len({tuple(r) for r in a}) > 90  # distinct draws per index
