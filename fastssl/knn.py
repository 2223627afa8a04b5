"""Weighted kNN classification on frozen features (Wu et al. 2018, as used by MoCo monitors).

Each query votes with its k nearest training features (cosine similarity s), weighted by
exp(s / T); the class with the largest summed weight wins.
"""
import math

import torch
import torch.nn.functional as F

from .normalize import normalize, to_unit_float


@torch.no_grad()
def extract_features(backbone_features, loader, device, channels_last=True, dtype=None,
                     l2_normalize=True):
    """Run ``backbone_features`` over an eval loader of (images uint8 BHWC, labels).

    Returns (features (N, D) float32 on CPU, L2-normalised unless ``l2_normalize=False`` (the
    linear probe standardises raw features instead); labels (N,)). One function for the
    trainer's kNN monitor, ``eval.py knn`` and ``eval.py linear``."""
    feats, labels = [], []
    for images, y in loader:
        x = to_unit_float(images.to(device, non_blocking=True))
        x = normalize(x, torch.channels_last if channels_last else torch.contiguous_format)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            f = backbone_features(x)
        f = f.float()
        feats.append((F.normalize(f, dim=1) if l2_normalize else f).cpu())
        # The loader refills its label buffers: on the CPU ``.cpu()`` would keep a view of one
        # that later batches overwrite.
        labels.append(y.reshape(-1).to('cpu', copy=True))
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def weighted_knn(train_features, train_labels, test_features, test_labels, k, temperature,
                 leave_one_out=False, chunk=1024):
    """Top-1 and top-5 accuracy (percent) of weighted kNN; top-5 is None with 5 classes or
    fewer, where it cannot miss. Features must be L2-normalised; all four tensors on one device
    (a GPU makes ImageNet-sized banks a matter of seconds). ``leave_one_out``: the queries are
    the bank itself, row for row, and none votes for itself (its own label at similarity 1
    would outvote its neighbours and measure nothing); k is then at most the bank less one.
    Classes are those of the bank (:func:`dense_labels`)."""
    num_classes, train_labels, test_labels = dense_labels(train_labels, test_labels)
    k = min(k, usable_neighbours(train_features.shape[0], leave_one_out))
    top1 = top5 = 0
    for start in range(0, test_features.shape[0], chunk):
        q = test_features[start:start + chunk]
        sim = q @ train_features.t()
        if leave_one_out:
            rows = torch.arange(q.shape[0], device=q.device)
            sim[rows, rows + start] = -math.inf
        sim_k, idx = sim.topk(k, dim=1)
        # exp(s / T) overflows float32 once s / T > 88 (T < 0.0113), and tied inf votes rank
        # classes by index: weigh relative to the nearest, which scales a query's votes alike
        weights = ((sim_k - sim_k[:, :1]) / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes, dtype=weights.dtype, device=q.device)
        votes.scatter_add_(1, train_labels[idx], weights)
        hits = topk_hits(votes, test_labels[start:start + chunk])
        top1, top5 = top1 + hits[0], None if hits[1] is None else top5 + hits[1]
    return percent([top1, top5], test_features.shape[0])


def dense_labels(train_labels, *others):
    """(C, ``train_labels``, *``others``) with the C distinct labels of ``train_labels``
    renumbered 0..C-1 in order: a list file may label its images with any integers (0 and
    20000, or 3e9), and the votes or logits need one column per class present, not per
    integer up to the largest (a top 5 of 20001 columns is no top 5 of 2 classes). A label of
    ``others`` that the train set lacks becomes -1, which no prediction matches: a miss, since
    no train image can vote for it or teach the probe it."""
    classes, train = torch.unique(train_labels, return_inverse=True)
    mapped = []
    for labels in others:
        labels = labels.to(classes.dtype)
        index = torch.searchsorted(classes, labels).clamp_(max=len(classes) - 1)
        mapped.append(torch.where(classes[index] == labels, index, -1))
    return (len(classes), train, *mapped)


def usable_neighbours(bank_size, leave_one_out):
    """The most neighbours a query can have: the bank, less the query itself when it is in."""
    return bank_size - 1 if leave_one_out else bank_size


def topk_hits(scores, truth, ks=(1, 5)):
    """For each k, how many rows of ``scores`` (N, C) rank class ``truth`` (N,) in their top k;
    None for a k >= C, whose top k holds every class (a top-5 of 100 % on 5 classes says
    nothing about the features). Shared by the kNN vote and the linear probe."""
    classes = scores.shape[1]
    ranked = scores.topk(min(max(ks), classes), dim=1).indices
    truth = truth.to(ranked.device).view(-1, 1)
    return [(ranked[:, :k] == truth).any(dim=1).sum().item() if k < classes else None
            for k in ks]


def percent(hits, n):
    """``topk_hits`` counts (summed over chunks) as percentages of ``n`` rows; None stays."""
    return [None if h is None else 100.0 * h / n for h in hits]
