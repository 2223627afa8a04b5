"""fastssl/split_batchnorm.py: each sub-batch normalised with its own statistics (channels-last
too), sample n in sub-batch n mod splits around a network, running statistics averaged over
the sub-batches, plain BatchNorm in eval mode, and the conversion of a network's BatchNorms."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from fastssl.split_batchnorm import SplitBatchNorm, convert_to_split_bn, forward_in_split_groups


def test_split_batchnorm_normalises_each_sub_batch_separately():
    torch.manual_seed(0)
    bn = SplitBatchNorm(3, num_splits=2)
    x = torch.randn(8, 3, 4, 4) * 3 + 1
    out = bn(x)
    for split in range(2):
        members = slice(4 * split, 4 * split + 4)  # in the layer: contiguous block `split`
        ref = F.batch_norm(x[members], None, None, training=True, eps=bn.eps)
        assert torch.allclose(out[members], ref, atol=1e-5)
    # channels_last input gives the same numbers
    out_cl = bn(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, out_cl, atol=1e-5)


def test_around_a_network_sample_n_is_in_sub_batch_n_mod_splits():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), SplitBatchNorm(4, num_splits=3))
    x = torch.randn(12, 3, 5, 5)
    out = forward_in_split_groups(network, x, 3)
    features = network[0](x)
    for split in range(3):
        ref = F.batch_norm(features[split::3], None, None, training=True, eps=1e-5)
        torch.testing.assert_close(out[split::3], ref)
    # eval mode: running statistics, the same for any order
    network.eval()
    torch.testing.assert_close(forward_in_split_groups(network, x, 3), network(x))
    with pytest.raises(ValueError, match='batch 12 is not divisible by bn_splits=5'):
        forward_in_split_groups(network.train(), x, 5)


def test_convert_to_split_bn_replaces_every_batchnorm():
    model = convert_to_split_bn(torchvision.models.resnet18(), 4)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(isinstance(m, SplitBatchNorm) and m.num_splits == 4 for m in bns)


def test_running_statistics_average_the_sub_batches_and_eval_is_plain_batchnorm():
    torch.manual_seed(0)
    bn = SplitBatchNorm(3, num_splits=2, momentum=0.5)
    x = torch.randn(8, 3, 4, 4) * 2 + 3
    bn(x)
    groups = x.chunk(2)
    mean = torch.stack([g.mean(dim=(0, 2, 3)) for g in groups]).mean(0)
    var = torch.stack([g.var(dim=(0, 2, 3)) for g in groups]).mean(0)   # unbiased per group
    torch.testing.assert_close(bn.running_mean, 0.5 * mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, 0.5 + 0.5 * var, rtol=1e-4, atol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    expected = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            training=False, eps=bn.eps)
    torch.testing.assert_close(bn(x), expected)


def test_one_split_is_plain_batchnorm_and_a_batch_must_divide():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    one, plain = SplitBatchNorm(3, num_splits=1), torch.nn.BatchNorm2d(3)
    torch.testing.assert_close(one(x), plain(x))
    with pytest.raises(ValueError, match='batch 6 is not divisible by bn_splits=4'):
        SplitBatchNorm(3, num_splits=4)(x)


def test_conversion_keeps_the_weights_and_one_split_changes_nothing():
    model = torchvision.models.resnet18()
    with torch.no_grad():
        model.bn1.weight.uniform_()
        model.bn1.running_mean.uniform_()
    weight, running = model.bn1.weight.clone(), model.bn1.running_mean.clone()
    assert convert_to_split_bn(model, 1) is model and type(model.bn1) is torch.nn.BatchNorm2d
    convert_to_split_bn(model, 2)
    assert isinstance(model.bn1, SplitBatchNorm)
    torch.testing.assert_close(model.bn1.weight.detach(), weight)
    torch.testing.assert_close(model.bn1.running_mean, running)
