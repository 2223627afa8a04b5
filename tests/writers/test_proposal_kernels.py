"""The compiled proposal-cue passes equal the OpenCV/NumPy expressions they replace, value for
value, on real frames and their real optical flow (a panning camera over a real photo, with
a real object moving on it)."""
import cv2
import numpy as np
import pytest

from benchmarks.synthetic_video import moving_patch_sequence
from writers.proposal_kernels import colour_integral, moving_mask, weighted_flow_integral
from writers.proposals import BLOB_MOTION, TRUSTED, camera_motion, dense_flow, flow_weight


@pytest.fixture(scope='module')
def frame_and_flow():
    frames, _ = moving_patch_sequence(2, patch='astronaut', background='coffee',
                                      velocity=(3.0, 1.5), pan=(1.0, -0.5))
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = dense_flow(gray[0], gray[1])
    return frames[0], flow, flow_weight(gray[0])


@pytest.mark.parametrize('levels', [2, 4])
@pytest.mark.parametrize('size', [(96, 72), (128, 96), (320, 240)])
def test_colour_integral_is_the_one_hot_integral(frame_and_flow, levels, size):
    rgb = cv2.resize(frame_and_flow[0], size, interpolation=cv2.INTER_AREA)
    quantised = (rgb.astype(np.int32) * levels) >> 8
    labels = (quantised[..., 0] * levels + quantised[..., 1]) * levels + quantised[..., 2]
    one_hot = (labels[..., None] == np.arange(levels ** 3)).view(np.uint8)
    expected = cv2.integral(one_hot, sdepth=cv2.CV_32S)
    got = colour_integral(rgb, levels)
    assert got.dtype == np.int32 and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert got[-1, -1].sum() == size[0] * size[1]


def test_weighted_flow_integral_is_the_stacked_integral(frame_and_flow):
    _, flow, weight = frame_and_flow
    expected = cv2.integral(np.dstack([flow * weight[..., None], weight]), sdepth=cv2.CV_64F)
    got = weighted_flow_integral(flow, weight)
    assert got.dtype == np.float64 and np.array_equal(got, expected)


def test_moving_mask_is_the_residual_threshold(frame_and_flow):
    _, flow, weight = frame_and_flow
    camera = camera_motion(flow)
    residual = flow - camera
    expected = (np.hypot(residual[..., 0], residual[..., 1]) > BLOB_MOTION) & (weight > TRUSTED)
    got = moving_mask(flow, weight, camera, BLOB_MOTION, TRUSTED)
    assert 0 < expected.sum() < expected.size / 2      # the mover, not the panning background
    assert np.array_equal(got, expected)
