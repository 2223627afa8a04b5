"""Numba MoCo v2 photometric augment: torchvision equivalence, draws, reproducibility, FFCV op."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from ffcv.pipeline.compiler import Compiler
from skimage import data
from skimage.transform import resize

from loaders import photometric as P
from loaders.epoch import EpochCell

TOL = 2.0 / 255


@pytest.fixture(scope='module')
def images():
    """Real float32 H x W x 3 images in [0, 1] (uint8-quantised, as decoded views are)."""
    out = []
    for im in (data.astronaut(), data.chelsea(), data.coffee()):
        small = resize(im, (64, 80), anti_aliasing=True)
        out.append((np.round(small * 255) / 255).astype(np.float32))
    return out


def _chw(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def _hwc(t):
    return t.permute(1, 2, 0).numpy()


def _check(img, numba_op, tv_op, *args):
    x = img.copy()
    numba_op(x, *args)
    ref = _hwc(tv_op(_chw(img)))
    err = np.abs(x - ref).max()
    assert err <= TOL, err
    return err


@pytest.mark.parametrize('f', [0.0, 0.6, 0.93, 1.0, 1.4])
def test_brightness_contrast_saturation_match_torchvision(images, f):
    for img in images:
        _check(img, P.adjust_brightness, lambda t: TF.adjust_brightness(t, f), f)
        _check(img, P.adjust_contrast, lambda t: TF.adjust_contrast(t, f), f)
        _check(img, P.adjust_saturation, lambda t: TF.adjust_saturation(t, f), f)


@pytest.mark.parametrize('h', [-0.5, -0.1, -0.037, 0.0, 0.02, 0.1, 0.31, 0.5])
def test_hue_matches_torchvision(images, h):
    # No rounding exception is needed: the closed form is continuous in the hue, so float32
    # differences from torchvision's sector selection stay ~1e-6.
    for img in images:
        err = _check(img, P.adjust_hue, lambda t: TF.adjust_hue(t, h), h)
        assert err < 1e-4


def test_hue_on_gray_and_saturated_pixels():
    px = np.array([[[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                    [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.2, 0.2, 0.9], [0.7, 0.7, 0.1]]],
                  dtype=np.float32)
    for h in (-0.5, -0.25, 0.1, 0.5):
        _check(px, P.adjust_hue, lambda t: TF.adjust_hue(t, h), h)


def test_grayscale_matches_torchvision(images):
    for img in images:
        _check(img, P.to_grayscale, lambda t: TF.rgb_to_grayscale(t, num_output_channels=3))


@pytest.mark.parametrize('sigma', [0.1, 0.37, 1.0, 2.0])
@pytest.mark.parametrize('ksize', [7, 9])
def test_blur_matches_torchvision(images, sigma, ksize):
    for img in images:
        scratch = np.empty_like(img)
        _check(img, lambda x: P.gaussian_blur(x, sigma, ksize, scratch),
               lambda t: TF.gaussian_blur(t, kernel_size=[ksize, ksize], sigma=[sigma, sigma]))


def test_blur_kernel_size():
    assert P.blur_kernel_size(224, 224) == 23
    assert P.blur_kernel_size(64, 80) == 7
    assert P.blur_kernel_size(96, 96) == 9


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


def test_augment_view_matches_torchvision_composition(images):
    views = [np.round(img * 255).astype(np.uint8) for img in images]
    params = P.photometric_params(11, 3, np.arange(40), 2, P.make_strengths())
    h, w = views[0].shape[:2]
    ksize = P.blur_kernel_size(h, w)
    buf = np.empty((h, w, 3), np.float32)
    scratch = np.empty_like(buf)
    worst = 0.0
    for b in range(params.shape[0]):
        for v in range(2):
            src = views[(b + v) % len(views)]
            out = src.copy()
            P.augment_view(out, params[b, v], ksize, buf, scratch)
            ref = _torchvision_view(src, params[b, v], ksize)
            worst = max(worst, np.abs(out / 255.0 - ref).max())
    assert worst <= TOL, worst


def test_identity_strengths_leave_image_unchanged(images):
    strengths = P.make_strengths(0, 0, 0, 0, p_jitter=1.0, p_gray=0.0, p_blur=0.0)
    params = P.photometric_params(0, 0, np.arange(8), 2, strengths)
    assert np.all(params[..., P.P_BRIGHTNESS] == 1.0)
    assert np.all(params[..., P.P_CONTRAST] == 1.0)
    assert np.all(params[..., P.P_SATURATION] == 1.0)
    assert np.all(params[..., P.P_HUE] == 0.0)
    view = np.round(images[0] * 255).astype(np.uint8)
    out = view.copy()
    buf = np.empty(view.shape, np.float32)
    P.augment_view(out, params[0, 0], 7, buf, np.empty_like(buf))
    np.testing.assert_array_equal(out, view)


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


def _run_op(op, batch, indices, threads):
    previous = Compiler.num_threads, torch.get_num_threads()
    try:
        Compiler.set_num_threads(threads)
        fn = Compiler.compile(op.generate_code())
        out = batch.copy()
        result = fn(out, None, indices)
        assert result is out or np.shares_memory(result, out)
        return out
    finally:
        Compiler.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])


def test_ffcv_op_thread_invariant_and_matches_reference(images):
    views = np.stack([np.round(img * 255).astype(np.uint8) for img in images])
    b, n_views = 12, 2
    batch = np.stack([np.stack([views[(i + v) % 3] for v in range(n_views)]) for i in range(b)])
    indices = np.arange(100, 100 + b, dtype=np.uint64)[::-1].copy()
    cell = EpochCell(3)
    strengths = P.make_strengths()
    op = P.PhotometricAugment(seed=5, epoch_cell=cell, strengths=strengths)
    one = _run_op(op, batch, indices, 1)
    two = _run_op(op, batch, indices, 2)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, batch)

    params = P.photometric_params(5, 3, indices.astype(np.int64), n_views, strengths)
    h, w = batch.shape[2:4]
    buf = np.empty((h, w, 3), np.float32)
    ref = batch.copy()
    for i in range(b):
        for v in range(n_views):
            P.augment_view(ref[i, v], params[i, v], P.blur_kernel_size(h, w), buf,
                           np.empty_like(buf))
    np.testing.assert_array_equal(one, ref)

    # the epoch is read when the batch runs, not frozen at compile time
    fn = Compiler.compile(op.generate_code())
    cell.set(4)
    later = batch.copy()
    fn(later, None, indices)
    assert not np.array_equal(later, one)


def test_ffcv_op_declares_state():
    from ffcv.pipeline.state import State
    op = P.PhotometricAugment(0, EpochCell())
    state = State(jit_mode=True, device=torch.device('cpu'), shape=(2, 32, 32, 3),
                  dtype=np.dtype('u1'))
    new_state, memory = op.declare_state_and_memory(state)
    assert new_state.shape == (2, 32, 32, 3) and new_state.jit_mode and memory is None
    with pytest.raises(ValueError):
        op.declare_state_and_memory(State(True, torch.device('cpu'), (32, 32, 3),
                                          np.dtype('u1')))
    with pytest.raises(ValueError):
        P.PhotometricAugment(0, EpochCell(), blur_kernel=4)
    with pytest.raises(ValueError):
        P.make_strengths(hue=0.6)
