"""Batched torch photometric augment: torchvision equivalence and agreement with the CPU op.

Runs the torch path on CPU (and on CUDA too where one is present)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from skimage import data
from skimage.transform import resize

from fastssl import gpu_augment as G
from loaders import photometric_params as P
from loaders.photometric_kernels import augment_view

TOL = 2.0 / 255
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture(scope='module')
def batch_uint8():
    """(N, H, W, 3) uint8 real images."""
    ims = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return np.stack([np.round(resize(im, (64, 80), anti_aliasing=True) * 255).astype(np.uint8)
                     for im in ims])


@pytest.fixture(scope='module')
def batch(batch_uint8):
    """(N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(batch_uint8).permute(0, 3, 1, 2).float().div(255).contiguous()


def _per_sample_check(x, out, tv_op, values):
    for i, value in enumerate(values):
        ref = tv_op(x[i].cpu(), float(value))
        err = (out[i].cpu() - ref).abs().max().item()
        assert err <= TOL, (value, err)


@pytest.mark.parametrize('device', DEVICES)
def test_functional_forms_match_torchvision(batch, device):
    x = batch.to(device)
    factors = torch.tensor([0.6, 1.0, 1.23, 1.4], dtype=torch.float64)
    hues = torch.tensor([-0.5, -0.07, 0.1, 0.5], dtype=torch.float64)
    _per_sample_check(x, G.adjust_brightness(x, factors), TF.adjust_brightness, factors)
    _per_sample_check(x, G.adjust_contrast(x, factors), TF.adjust_contrast, factors)
    _per_sample_check(x, G.adjust_saturation(x, factors), TF.adjust_saturation, factors)
    _per_sample_check(x, G.adjust_hue(x, hues), TF.adjust_hue, hues)
    gray = G.rgb_to_grayscale(x)
    ref = TF.rgb_to_grayscale(x.cpu(), num_output_channels=3)
    assert (gray.cpu() - ref).abs().max().item() <= TOL
    sigmas = torch.tensor([0.1, 0.5, 1.3, 2.0], dtype=torch.float64)
    blurred = G.gaussian_blur(x, sigmas, 7)
    _per_sample_check(x, blurred,
                      lambda t, s: TF.gaussian_blur(t, kernel_size=[7, 7], sigma=[s, s]), sigmas)


def test_channels_last_is_preserved(batch):
    x = batch.contiguous(memory_format=torch.channels_last)
    f = torch.full((x.shape[0],), 1.2, dtype=torch.float64)
    for out in (G.adjust_brightness(x, f), G.adjust_contrast(x, f), G.adjust_saturation(x, f),
                G.adjust_hue(x, f - 1.1), G.rgb_to_grayscale(x), G.gaussian_blur(x, f, 7)):
        assert out.is_contiguous(memory_format=torch.channels_last)
    params = P.photometric_params(0, 0, np.arange(x.shape[0]), 1, P.make_strengths())[:, 0]
    out = G.apply_photometric(x, params)
    assert out.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(out.contiguous().numpy(),
                               G.apply_photometric(batch, params).numpy(), atol=1e-6)


def _cpu_path(views_uint8, params):
    out = views_uint8.copy()
    n, h, w, _ = out.shape
    buf = np.empty((h, w, 3), np.float32)
    scratch = np.empty_like(buf)
    for i in range(n):
        augment_view(out[i], params[i], P.blur_kernel_size(h, w), buf, scratch)
    return out


@pytest.mark.parametrize('device', DEVICES)
def test_gpu_path_matches_cpu_path(batch_uint8, device):
    n = 48
    views = batch_uint8[np.arange(n) % len(batch_uint8)]
    aug = G.GPUPhotometric(seed=9)
    indices = torch.arange(1000, 1000 + n)
    params = aug.params(indices, epoch=2, n_views=2)  # (n, 2, NUM_PARAMS)
    x = torch.from_numpy(views).permute(0, 3, 1, 2).float().div(255).to(device)
    outs = aug.augment_views([x, x.flip(-1)], indices, epoch=2)
    for v, (src, out) in enumerate(zip((views, views[:, :, ::-1]), outs)):
        expected = _cpu_path(np.ascontiguousarray(src), params[:, v]) / 255.0
        got = out.permute(0, 2, 3, 1).cpu().numpy()
        assert np.abs(got - expected).max() <= TOL
        # rounding to uint8 is the only difference
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-4


def test_apply_photometric_validates(batch):
    params = np.zeros((batch.shape[0], G.NUM_PARAMS))
    np.testing.assert_array_equal(G.apply_photometric(batch, params).numpy(), batch.numpy())
    with pytest.raises(ValueError):
        G.apply_photometric(batch, params[:2])
    with pytest.raises(TypeError):
        G.apply_photometric((batch * 255).to(torch.uint8), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_no_host_device_sync_on_cuda(batch):
    x = batch.cuda()
    params = P.photometric_params(0, 0, np.arange(x.shape[0]), 1, P.make_strengths())[:, 0]
    G.apply_photometric(x, params)  # warm-up (kernels, pinned allocator)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        G.apply_photometric(x, params)
    finally:
        torch.cuda.set_sync_debug_mode('default')
