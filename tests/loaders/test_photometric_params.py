"""Photometric parameters: strengths, kernel size, draws' distribution and reproducibility."""
import numpy as np
import pytest
from numba import njit

from loaders import photometric_params as P
from loaders.rng import STREAM_PHOTOMETRIC, next_uniform, view_state


def test_blur_kernel_size():
    assert P.blur_kernel_size(224, 224) == 23
    assert P.blur_kernel_size(64, 80) == 7
    assert P.blur_kernel_size(96, 96) == 9


def test_make_strengths_layout_and_refusals():
    s = P.make_strengths(0.1, 0.2, 0.3, 0.05, 0.6, 0.7, 0.8, 0.5, 1.5)
    assert s.dtype == np.float64 and s.shape == (P.NUM_STRENGTHS,)
    expected = {P.S_BRIGHTNESS: 0.1, P.S_CONTRAST: 0.2, P.S_SATURATION: 0.3, P.S_HUE: 0.05,
                P.S_P_JITTER: 0.6, P.S_P_GRAY: 0.7, P.S_P_BLUR: 0.8, P.S_SIGMA_MIN: 0.5,
                P.S_SIGMA_MAX: 1.5}
    assert {k: s[k] for k in expected} == expected
    with pytest.raises(ValueError):
        P.make_strengths(hue=0.6)
    with pytest.raises(ValueError, match='>= 0'):
        P.make_strengths(contrast=-0.1)
    with pytest.raises(ValueError, match='not in'):
        P.make_strengths(p_blur=1.5)
    with pytest.raises(ValueError, match='sigma'):
        P.make_strengths(sigma_min=2.0, sigma_max=1.0)


def test_zero_strengths_give_identity_factors():
    strengths = P.make_strengths(0, 0, 0, 0, p_jitter=1.0, p_gray=0.0, p_blur=0.0)
    params = P.photometric_params(0, 0, np.arange(8), 2, strengths)
    assert np.all(params[..., P.P_BRIGHTNESS] == 1.0)
    assert np.all(params[..., P.P_CONTRAST] == 1.0)
    assert np.all(params[..., P.P_SATURATION] == 1.0)
    assert np.all(params[..., P.P_HUE] == 0.0)


@njit
def _consumes_eleven_uniforms(strengths):
    """Whether draw_view_params leaves the state 11 uniforms on from one view's start."""
    start = view_state(1, 2, 3, STREAM_PHOTOMETRIC, 0)
    drawn = P.draw_view_params(start, strengths, np.empty(P.NUM_PARAMS))
    state = start
    for _ in range(11):
        state, _u = next_uniform(state)
    return drawn == state


def test_a_view_consumes_exactly_eleven_uniforms():
    """Whatever the strengths: the layout never depends on earlier outcomes."""
    for strengths in (P.make_strengths(), P.make_strengths(0, 0, 0, 0, 0.0, 1.0, 0.0)):
        assert _consumes_eleven_uniforms(strengths)


def test_param_distribution():
    n = 20000
    strengths = P.make_strengths()
    params = P.photometric_params(1, 0, np.arange(n), 2, strengths).reshape(-1, P.NUM_PARAMS)
    m = params.shape[0]
    tol = 4 * np.sqrt(0.25 / m)  # ~4 sigma
    assert abs(params[:, P.P_JITTER].mean() - 0.8) < tol
    assert abs(params[:, P.P_GRAY].mean() - 0.2) < tol
    assert abs(params[:, P.P_BLUR].mean() - 0.5) < tol
    for col in (P.P_BRIGHTNESS, P.P_CONTRAST, P.P_SATURATION):
        assert params[:, col].min() >= 0.6 and params[:, col].max() <= 1.4
        assert abs(params[:, col].mean() - 1.0) < 0.01
    assert params[:, P.P_HUE].min() >= -0.1 and params[:, P.P_HUE].max() <= 0.1
    assert params[:, P.P_SIGMA].min() >= 0.1 and params[:, P.P_SIGMA].max() <= 2.0
    assert abs(params[:, P.P_SIGMA].mean() - 1.05) < 0.02
    order = params[:, P.P_ORDER:P.P_ORDER + 4].astype(int)
    assert np.all(np.sort(order, axis=1) == np.arange(4))
    first = np.bincount(order[:, 0], minlength=4) / m
    np.testing.assert_allclose(first, 0.25, atol=0.015)
    perms = np.unique(order @ np.array([64, 16, 4, 1]), return_counts=True)[1]
    assert len(perms) == 24
    np.testing.assert_allclose(perms / m, 1 / 24, atol=0.01)
    # indicators are independent coins: jitter and gray co-occur ~0.16
    both = (params[:, P.P_JITTER] * params[:, P.P_GRAY]).mean()
    assert abs(both - 0.16) < tol


def test_params_reproducible_and_distinct():
    s = P.make_strengths()
    a = P.photometric_params(7, 4, np.arange(16), 2, s)
    np.testing.assert_array_equal(a, P.photometric_params(7, 4, np.arange(16), 2, s))
    # a sample's draws do not depend on the rest of the batch
    np.testing.assert_array_equal(a[5], P.photometric_params(7, 4, np.array([5]), 2, s)[0])
    np.testing.assert_array_equal(a[3:9], P.photometric_params(7, 4, np.arange(3, 9), 2, s))
    # views are the first draws of the same sequence
    np.testing.assert_array_equal(a[:, 0], P.photometric_params(7, 4, np.arange(16), 1, s)[:, 0])
    cont = [P.P_BRIGHTNESS, P.P_CONTRAST, P.P_SATURATION, P.P_HUE, P.P_SIGMA]
    other_epoch = P.photometric_params(7, 5, np.arange(16), 2, s)
    other_seed = P.photometric_params(8, 4, np.arange(16), 2, s)
    for other in (other_epoch, other_seed):
        assert not np.any(a[..., cont] == other[..., cont])
    assert not np.any(a[:, 0, cont] == a[:, 1, cont])  # views independent
    assert not np.any(a[:-1][..., cont] == a[1:][..., cont])  # indices independent


def test_first_view_numbers_the_views():
    """View v's parameters are the same whichever block of views asks for them."""
    s = P.make_strengths()
    four = P.photometric_params(2, 1, np.arange(6), 4, s)
    np.testing.assert_array_equal(four[:, 2:], P.photometric_params(2, 1, np.arange(6), 2, s,
                                                                    first_view=2))
