"""Numba photometric kernels against torchvision: each functional form, and whole views."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from loaders import photometric_kernels as K
from loaders import photometric_params as P

TOL = 2.0 / 255


def _chw(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def _hwc(t):
    return t.permute(1, 2, 0).numpy()


def _check(img, numba_op, tv_op, *args, result=None):
    """Max abs difference of ``numba_op`` (in place on a copy of the H x W x 3 ``img``, or
    into ``result``) from torchvision's ``tv_op``, asserted <= TOL."""
    x = img.copy()
    numba_op(x, *args)
    ref = _hwc(tv_op(_chw(img)))
    err = np.abs((x if result is None else result) - ref).max()
    assert err <= TOL, err
    return err


def _check_planes(img, numba_op, tv_op, *args):
    """``_check`` for a colour form, which works on the planes (3 x H x W) of ``img``."""
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    numba_op(planes, *args)
    return _check(img, lambda x: None, tv_op, result=planes.transpose(1, 2, 0))


@pytest.mark.parametrize('f', [0.0, 0.6, 0.93, 1.0, 1.4])
def test_brightness_contrast_saturation_match_torchvision(float_photos, f):
    for img in float_photos:
        _check_planes(img, K.adjust_brightness, lambda t: TF.adjust_brightness(t, f), f)
        _check_planes(img, K.adjust_contrast, lambda t: TF.adjust_contrast(t, f), f)
        _check_planes(img, K.adjust_saturation, lambda t: TF.adjust_saturation(t, f), f)


@pytest.mark.parametrize('h', [-0.5, -0.1, -0.037, 0.0, 0.02, 0.1, 0.31, 0.5])
def test_hue_matches_torchvision(float_photos, h):
    # No rounding exception is needed: the closed form is continuous in the hue, so float32
    # differences from torchvision's sector selection stay ~1e-6.
    for img in float_photos:
        err = _check_planes(img, K.adjust_hue, lambda t: TF.adjust_hue(t, h), h)
        assert err < 1e-4


def test_hue_on_gray_and_saturated_pixels():
    px = np.array([[[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                    [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.2, 0.2, 0.9], [0.7, 0.7, 0.1]]],
                  dtype=np.float32)
    for h in (-0.5, -0.25, 0.1, 0.5):
        _check_planes(px, K.adjust_hue, lambda t: TF.adjust_hue(t, h), h)


def test_hue_keeps_each_pixels_max_and_stays_in_range():
    """Every pixel keeps its largest value and no value leaves [0, its max], the extremes 0 and
    1 included: why the hue needs no clamp."""
    rng = np.random.default_rng(5)
    values = rng.choice(np.array([0.0, 1.0, 1e-7, 1 - 6e-8, 0.5], np.float32), (3, 40, 40))
    values[:, 20:] = rng.random((3, 20, 40), dtype=np.float32)
    for h in (-0.5, -0.3, -0.1, 0.0, 1e-6, 0.1, 0.25, 0.5):
        planes = values.copy()
        K.adjust_hue(planes, h)
        top = values.max(axis=0)
        np.testing.assert_array_equal(planes.max(axis=0), top)
        assert planes.min() >= 0 and np.all(planes <= top)


def test_grayscale_matches_torchvision(float_photos):
    for img in float_photos:
        plane = np.empty(img.shape[:2], np.float32)
        K.gray_plane(np.ascontiguousarray(img.transpose(2, 0, 1)), plane)
        _check(img, lambda x: None, lambda t: TF.rgb_to_grayscale(t, num_output_channels=1),
               result=plane[:, :, None])


@pytest.mark.parametrize('sigma', [0.1, 0.37, 1.0, 2.0])
@pytest.mark.parametrize('ksize', [7, 9])
def test_blur_matches_torchvision(float_photos, sigma, ksize):
    for img in float_photos:
        out = np.empty_like(img)
        _check(img, lambda x: K.gaussian_blur(x, sigma, ksize, out),
               lambda t: TF.gaussian_blur(t, kernel_size=[ksize, ksize], sigma=[sigma, sigma]),
               result=out)


def _torchvision_view(img_uint8, params, ksize):
    """torchvision composition applying the drawn params in the drawn order (float path)."""
    t = _chw(img_uint8).float() / 255
    ops = {P.OP_BRIGHTNESS: lambda u: TF.adjust_brightness(u, params[P.P_BRIGHTNESS]),
           P.OP_CONTRAST: lambda u: TF.adjust_contrast(u, params[P.P_CONTRAST]),
           P.OP_SATURATION: lambda u: TF.adjust_saturation(u, params[P.P_SATURATION]),
           P.OP_HUE: lambda u: TF.adjust_hue(u, params[P.P_HUE])}
    if params[P.P_JITTER]:
        for k in range(4):
            t = ops[int(params[P.P_ORDER + k])](t)
    if params[P.P_GRAY]:
        t = TF.rgb_to_grayscale(t, num_output_channels=3)
    if params[P.P_BLUR]:
        s = float(params[P.P_SIGMA])
        t = TF.gaussian_blur(t, kernel_size=[ksize, ksize], sigma=[s, s])
    return _hwc(t)


@pytest.mark.parametrize('strengths', [P.make_strengths(),
                                       P.make_strengths(p_jitter=0.5, p_gray=1.0, p_blur=1.0)],
                         ids=['mocov2', 'gray_and_blur'])
def test_augment_view_matches_torchvision_composition(float_photos, strengths):
    """Whole views against torchvision; every view of the second case takes the grayscale
    blur path (one plane blurred, written to all three channels)."""
    views = [np.round(img * 255).astype(np.uint8) for img in float_photos]
    params = P.photometric_params(11, 3, np.arange(40), 2, strengths)
    h, w = views[0].shape[:2]
    ksize = P.blur_kernel_size(h, w)
    buf = np.empty((h, w, 3), np.float32)
    scratch = np.empty_like(buf)
    worst = 0.0
    for b in range(params.shape[0]):
        for v in range(2):
            src = views[(b + v) % len(views)]
            out = src.copy()
            K.augment_view(out, params[b, v], ksize, buf, scratch)
            ref = _torchvision_view(src, params[b, v], ksize)
            worst = max(worst, np.abs(out / 255.0 - ref).max())
    assert worst <= TOL, worst


def test_identity_params_leave_image_unchanged(float_photos):
    strengths = P.make_strengths(0, 0, 0, 0, p_jitter=1.0, p_gray=0.0, p_blur=0.0)
    params = P.photometric_params(0, 0, np.arange(8), 2, strengths)
    view = np.round(float_photos[0] * 255).astype(np.uint8)
    out = view.copy()
    buf = np.empty(view.shape, np.float32)
    K.augment_view(out, params[0, 0], 7, buf, np.empty_like(buf))
    np.testing.assert_array_equal(out, view)


def test_a_blur_of_one_tap_changes_nothing(float_photos):
    """Below sigma = 1 / 4.3 the kernel keeps only its centre, of weight 1: the blur leaves the
    image as it is (augment_view skips it, and its cost estimate counts none)."""
    img = float_photos[1]
    out = np.empty_like(img)
    K.gaussian_blur(img, 0.2, 23, out)
    np.testing.assert_array_equal(out, img)
    params = np.zeros(P.NUM_PARAMS)
    params[[P.P_BLUR, P.P_SIGMA]] = 1.0, 0.2
    view = np.round(img * 255).astype(np.uint8)
    out = view.copy()
    K.augment_view(out, params, 23, np.empty(img.shape, np.float32), np.empty_like(img))
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize('count, at', [(1, 0), (100, 0), (672 + 2 * 33, 33), (5000, 17)])
def test_aligned_floats_start_the_given_element_on_a_cache_line(count, at):
    for _ in range(8):   # NumPy's own alignment varies between allocations
        a = K.aligned_floats(count, at)
        assert a.shape == (count,) and a.dtype == np.float32 and a.flags['C_CONTIGUOUS']
        assert (a.ctypes.data + 4 * at) % K.CACHE_LINE == 0


def test_aligned_image_is_a_contiguous_scratch_image_on_a_cache_line():
    img = K.aligned_image(224, 200)
    assert img.shape == (224, 200, 3) and img.dtype == np.float32 and img.flags['C_CONTIGUOUS']
    assert img.ctypes.data % K.CACHE_LINE == 0


def test_estimated_cost_grows_with_the_ops_drawn_and_the_blur_sigma():
    params = np.zeros(P.NUM_PARAMS)
    assert K.estimated_cost(params, 23) == 0.0          # no op: the view is left as it is
    params[P.P_JITTER] = 1.0
    jitter = K.estimated_cost(params, 23)
    params[P.P_BLUR] = 1.0
    costs = []
    for sigma in (0.1, 0.5, 1.0, 2.0):
        params[P.P_SIGMA] = sigma
        costs.append(K.estimated_cost(params, 23))
    # sigma 0.1 keeps one tap: no blur to pay for
    assert jitter > 0 and costs[0] == jitter < costs[1] and costs == sorted(costs)
    capped = []
    for sigma in (50.0, 100.0):                          # the kernel side caps the taps
        params[P.P_SIGMA] = sigma
        capped.append(K.estimated_cost(params, 23))
    assert capped[0] == capped[1] < K.estimated_cost(params, 45)
