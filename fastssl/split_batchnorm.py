"""Split BatchNorm: the single-device remedy for BatchNorm leaking between query and key.

With one BatchNorm over the whole batch, a query and its positive key are normalised with
statistics that include each other, and the network can "cheat" the contrastive task by
learning those statistics (MoCo §3.3). Official MoCo fixes this with shuffle-BN across GPUs.
On one device we follow the authors' CIFAR demo: BatchNorm statistics are computed over
``num_splits`` sub-batches (sample n belongs to sub-batch n mod num_splits), and the key
batch is shuffled before the key encoder and un-shuffled after (``moco.py``), so a query and
its key never share a sub-batch's statistics in the same position. Eval mode uses the running
statistics, i.e. plain BatchNorm.

Works in channels_last: only the batch dimension is reshaped, which is a view in either
memory format.

A group needs ``config.MIN_GROUP`` samples at least (fewer give batch statistics too noisy to
train on); ``moco.bn_splits=auto`` picks the most groups that keep that many (:func:`auto_splits`).
"""
import torch
from torch import nn

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


def small_groups_warning(batch, bn_splits, processes=1):
    """The warning for BatchNorm groups of fewer than ``MIN_GROUP`` samples, or None. One
    process: split-BN groups of ``batch / bn_splits``; several (torchrun): shuffle-BN, whose
    groups are each process's share of the batch."""
    if processes > 1:
        group = batch // processes
        made = f'shuffle-BN: data.batch_size={batch} over {processes} processes'
        remedy = 'a larger data.batch_size or fewer processes'
    else:
        splits = resolve_splits(bn_splits, batch)
        group, best = batch // splits, batch // auto_splits(batch)
        made = f'data.batch_size={batch} / moco.bn_splits={splits}'
        remedy = (f'moco.bn_splits=auto (groups of {best})' if best >= MIN_GROUP else
                  f'data.batch_size >= {MIN_GROUP}')
    if group >= MIN_GROUP:
        return None
    return (f'BatchNorm groups of {group} samples ({made}) are fewer than {MIN_GROUP}: their '
            f'statistics are too noisy to train stably; use {remedy}')


class SplitBatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features, num_splits, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x):
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        if n % s:
            raise ValueError(f'batch {n} is not divisible by bn_splits={s}')
        grouped = x.unflatten(0, (n // s, s)).float()  # (G, S, C, H, W); split = n mod S
        var, mean = torch.var_mean(grouped, dim=(0, 3, 4), unbiased=False, keepdim=True)
        with torch.no_grad():
            count = grouped.numel() / (s * c)
            unbiased = var.mean(dim=1).flatten() * count / max(count - 1, 1)
            self.running_mean.lerp_(mean.mean(dim=1).flatten(), self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
            self.num_batches_tracked += 1
        out = (grouped - mean) * torch.rsqrt(var + self.eps)
        out = out * self.weight.view(1, 1, c, 1, 1) + self.bias.view(1, 1, c, 1, 1)
        return out.to(x.dtype).flatten(0, 1)


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
