"""Linear probe on frozen, precomputed features.

Features are extracted once (``knn.extract_features``); the classifier then trains on the
feature tensors alone, which takes seconds where training through the backbone would take
hours. Features are standardised with the training set's mean and standard deviation (a
BatchNorm without affine parameters, frozen), which makes one learning rate work across
backbones whose feature scales differ by orders of magnitude.

Two optimisers: ``sgd`` (mini-batch, momentum 0.9, cosine schedule, ``epochs`` passes) and
``lbfgs`` (full batch, strong-Wolfe line search, ``epochs`` iterations), both minimising
cross-entropy + weight_decay / 2 * ||W||^2.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .knn import percent, topk_hits


class LinearProbe(nn.Module):
    """Standardise (frozen statistics) then one linear layer."""

    def __init__(self, mean, std, num_classes):
        super().__init__()
        self.register_buffer('mean', mean)
        self.register_buffer('std', std)
        self.linear = nn.Linear(mean.numel(), num_classes)

    def forward(self, features):
        return self.linear((features - self.mean) / self.std)


def _objective(probe, x, y, weight_decay):
    return F.cross_entropy(probe(x), y) + 0.5 * weight_decay * probe.linear.weight.square().sum()


def train_linear_probe(features, labels, num_classes, epochs=100, optimizer='sgd', lr=0.1,
                       weight_decay=0.0, batch_size=256, seed=0, device='cpu'):
    """Fit a :class:`LinearProbe` on ``features`` (N, D) and integer ``labels`` (N,)."""
    device = torch.device(device)
    x, y = features.float().to(device), labels.long().to(device)
    # Population statistics; constant features (dead units) get std 1 instead of 0.
    mean, std = x.mean(0), x.std(0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    generator = torch.Generator().manual_seed(seed)
    probe = LinearProbe(mean, std, num_classes)
    with torch.no_grad():  # seeded init, independent of the global RNG
        bound = 1.0 / math.sqrt(x.shape[1])
        probe.linear.weight.uniform_(-bound, bound, generator=generator)
        probe.linear.bias.zero_()
    probe.to(device)
    if optimizer == 'lbfgs':
        opt = torch.optim.LBFGS(probe.linear.parameters(), lr=1.0, max_iter=epochs,
                                history_size=20, line_search_fn='strong_wolfe')

        def closure():
            opt.zero_grad()
            loss = _objective(probe, x, y, weight_decay)
            loss.backward()
            return loss
        opt.step(closure)
    elif optimizer == 'sgd':
        opt = torch.optim.SGD(probe.linear.parameters(), lr=lr, momentum=0.9)
        steps_per_epoch = math.ceil(x.shape[0] / batch_size)
        total = epochs * steps_per_epoch
        for epoch in range(epochs):
            order = torch.randperm(x.shape[0], generator=generator).to(device)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in opt.param_groups:
                    group['lr'] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
                batch = order[i * batch_size:(i + 1) * batch_size]
                opt.zero_grad(set_to_none=True)
                _objective(probe, x[batch], y[batch], weight_decay).backward()
                opt.step()
    else:
        raise ValueError(f'unknown optimizer {optimizer!r} (sgd, lbfgs)')
    return probe.eval()


@torch.no_grad()
def topk_accuracy(probe, features, labels, ks=(1, 5), chunk=65536):
    """Top-k accuracies (percent) of ``probe`` on (features, labels); None for a k at least
    the number of classes (``topk_hits``)."""
    device = probe.mean.device
    hits = [0] * len(ks)
    for start in range(0, features.shape[0], chunk):
        logits = probe(features[start:start + chunk].float().to(device))
        hits = [None if b is None else a + b
                for a, b in zip(hits, topk_hits(logits, labels[start:start + chunk], ks))]
    return percent(hits, features.shape[0])
