"""fastssl/encoder.py: a torchvision ResNet trunk (pooled features, no classifier) and MoCo v2's
two-layer MLP head; a zero hidden width means the trunk's feature width."""
import pytest
import torch
from torch import nn

from fastssl.encoder import Encoder


@pytest.mark.parametrize('arch, width', [('resnet18', 512), ('resnet50', 2048)])
def test_features_and_projection_shapes(arch, width):
    torch.manual_seed(0)
    encoder = Encoder(arch, proj_hidden=64, proj_dim=16).eval()
    x = torch.randn(2, 3, 32, 32)
    assert encoder.feature_dim == width and isinstance(encoder.backbone.fc, nn.Identity)
    features = encoder.features(x)
    assert features.shape == (2, width)
    projected = encoder(x)
    assert projected.shape == (2, 16)
    torch.testing.assert_close(projected, encoder.head(features))


def test_head_is_linear_relu_linear_and_defaults_to_the_feature_width():
    head = Encoder('resnet18', proj_hidden=0, proj_dim=128).head
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features) == (512, 512)
    assert (head[2].in_features, head[2].out_features) == (512, 128)
    assert Encoder('resnet18', proj_hidden=96, proj_dim=8).head[0].out_features == 96
