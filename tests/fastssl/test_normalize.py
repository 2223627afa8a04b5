"""fastssl/normalize.py: uint8 HWC views become [0, 1] float CHW, then ImageNet-normalised
exactly as torchvision's Normalize, in the requested memory format and the input's dtype."""
import torch
import torchvision.transforms.functional as TF

from fastssl.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize, to_unit_float


def test_to_unit_float_moves_channels_first_and_scales():
    images = torch.randint(0, 256, (2, 5, 6, 7, 3), dtype=torch.uint8)
    out = to_unit_float(images)
    assert out.shape == (2, 5, 3, 6, 7) and out.dtype == torch.float32
    torch.testing.assert_close(out, images.permute(0, 1, 4, 2, 3).float() / 255)
    assert out.min() >= 0 and out.max() <= 1


def test_normalize_equals_torchvision_in_the_requested_memory_format():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    expected = TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    channels_last = normalize(x)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(channels_last, expected)
    plain = normalize(x, torch.contiguous_format)
    assert plain.is_contiguous()
    torch.testing.assert_close(plain, expected)


def test_normalize_keeps_the_dtype():
    x = torch.rand(2, 3, 4, 4)
    half = normalize(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), normalize(x), atol=0.05, rtol=0.02)
