"""Split BatchNorm: the single-device remedy for BatchNorm leaking between query and key.

With one BatchNorm over the whole batch, a query and its positive key are normalised with
statistics that include each other, and the network can "cheat" the contrastive task by
learning those statistics (MoCo §3.3). Official MoCo fixes this with shuffle-BN across GPUs.
On one device we follow the authors' CIFAR demo: BatchNorm statistics are computed over
``num_splits`` sub-batches (sample n of the step's batch belongs to sub-batch n mod
num_splits, as it would belong to rank n mod W under torchrun), and the key batch is shuffled
before the key encoder and un-shuffled after (``moco.py``), so a query and its key never share
a sub-batch's statistics in the same position. Eval mode uses the running statistics, i.e.
plain BatchNorm.

Inside the network a sub-batch is a contiguous block of the batch (block s of
``num_splits``): each block is a view in either memory format, so every layer normalises with
the fused BatchNorm kernel (cuDNN on a GPU) instead of element-wise arithmetic over a
reshaped copy, which made a channels-last bf16 step no faster than fp32 on an H200.
:func:`forward_in_split_groups` orders the batch into those blocks once before the network
and back after it.

A group needs ``config.MIN_GROUP`` samples at least (fewer give batch statistics too noisy to
train on); ``moco.bn_splits=auto`` picks the most groups that keep that many (:func:`auto_splits`).
"""
import torch
import torch.nn.functional as F
from torch import nn

from fastssl_common.errors import UserError

from .config import AUTO_SPLITS_MAX, MIN_GROUP


def auto_splits(batch):
    """``moco.bn_splits=auto`` for a batch on one device: the most groups, up to
    ``AUTO_SPLITS_MAX``, that divide ``batch`` with ``MIN_GROUP`` samples or more in each
    (1, plain BatchNorm, below two groups' worth)."""
    return max((splits for splits in range(1, AUTO_SPLITS_MAX + 1)
                if batch % splits == 0 and batch // splits >= MIN_GROUP), default=1)


def resolve_splits(bn_splits, batch):
    """The number of split-BN groups ``moco.bn_splits`` means for ``batch`` on one device."""
    return auto_splits(batch) if bn_splits == 'auto' else bn_splits


def bn_groups(batch, bn_splits, processes=1, terms=1):
    """(samples in each BatchNorm group, what made it that size, the remedy). One process:
    split-BN groups of ``terms x batch / bn_splits`` (the terms of a step go through the query
    encoder as one batch); several (torchrun): shuffle-BN, whose groups are each process's
    share of that."""
    samples = terms * batch
    shown = f'data.batch_size={batch}' + (f' x {terms} terms' if terms > 1 else '')
    if processes > 1:
        return (samples // processes, f'shuffle-BN: {shown} over {processes} processes',
                'a larger data.batch_size or fewer processes')
    splits = resolve_splits(bn_splits, batch)
    best = samples // auto_splits(batch)
    remedy = (f'moco.bn_splits=auto (groups of {best})' if best >= MIN_GROUP else
              f'data.batch_size >= {-(-MIN_GROUP // terms)}')
    return samples // splits, f'{shown} / moco.bn_splits={splits}', remedy


def small_groups_warning(batch, bn_splits, processes=1, terms=1):
    """The warning for BatchNorm groups of fewer than ``MIN_GROUP`` samples, or None."""
    group, made, remedy = bn_groups(batch, bn_splits, processes, terms)
    if group >= MIN_GROUP:
        return None
    return (f'BatchNorm groups of {group} samples ({made}) are fewer than {MIN_GROUP}: their '
            f'statistics are too noisy to train stably; use {remedy}')


def check_bn_groups(batch, bn_splits, processes=1, terms=1):
    """UserError for BatchNorm groups of one sample: training mode cannot normalise a single
    sample (the pooled features' BatchNorm would fail on the first step)."""
    group, made, remedy = bn_groups(batch, bn_splits, processes, terms)
    if group < 2:
        raise UserError(f'BatchNorm groups of {group} sample ({made}): BatchNorm needs at '
                        f'least 2 to train; use {remedy}')


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of each of ``num_splits`` contiguous
    blocks of the batch; the running statistics move by the blocks' average."""

    def __init__(self, num_features, num_splits, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x):
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        s = self.num_splits
        if x.shape[0] % s:
            raise ValueError(f'batch {x.shape[0]} is not divisible by bn_splits={s}')
        # each block updates its own copy of the running statistics, averaged after: the
        # authors' demo, and linear, so it equals one update by the blocks' mean statistics
        running_mean = self.running_mean.repeat(s, 1)
        running_var = self.running_var.repeat(s, 1)
        out = torch.cat([F.batch_norm(block, running_mean[i], running_var[i], self.weight,
                                      self.bias, True, self.momentum, self.eps)
                         for i, block in enumerate(x.chunk(s))])
        with torch.no_grad():
            self.running_mean.copy_(running_mean.mean(dim=0))
            self.running_var.copy_(running_var.mean(dim=0))
            self.num_batches_tracked += 1
        return out


def split_group_order(batch, num_splits, device=None):
    """The order that puts split-BN group s (samples n with n mod num_splits == s) into
    contiguous block s: ``x[order]`` for SplitBatchNorm's blocks."""
    if batch % num_splits:
        raise ValueError(f'batch {batch} is not divisible by bn_splits={num_splits}')
    return torch.arange(batch, device=device).view(-1, num_splits).t().flatten()


def forward_in_split_groups(network, x, num_splits):
    """``network(x)`` with sample n normalised in split-BN group n mod ``num_splits``
    (plain ``network(x)`` for one split or in eval mode, where order does not matter)."""
    if num_splits == 1 or not network.training:
        return network(x)
    order = split_group_order(x.shape[0], num_splits, x.device)
    return network(x[order])[torch.argsort(order)]


def convert_to_split_bn(module, num_splits):
    """Replace every BatchNorm2d in ``module`` by a SplitBatchNorm (in place); returns it."""
    if num_splits <= 1:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm):
            split = SplitBatchNorm(child.num_features, num_splits, eps=child.eps,
                                   momentum=child.momentum)
            split.load_state_dict(child.state_dict())
            setattr(module, name, split)
        else:
            convert_to_split_bn(child, num_splits)
    return module
