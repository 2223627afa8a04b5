"""Weighted kNN classification on frozen features (Wu et al. 2018, as used by MoCo monitors).

Each query votes with its k nearest training features (cosine similarity s), weighted by
exp(s / T); the class with the largest summed weight wins.
"""
import torch
import torch.nn.functional as F


@torch.no_grad()
def extract_features(backbone_features, loader, device, channels_last=True, dtype=None):
    """Run ``backbone_features`` over an eval loader of (images uint8 BHWC, labels).

    Returns (features (N, D) float32 L2-normalised, on CPU; labels (N,))."""
    feats, labels = [], []
    for images, y in loader:
        x = normalize_images(images.to(device, non_blocking=True), channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            f = backbone_features(x)
        feats.append(F.normalize(f.float(), dim=1).cpu())
        labels.append(y.reshape(-1).cpu())
    return torch.cat(feats), torch.cat(labels)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images_bhwc_uint8, channels_last=True):
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) normalised with ImageNet mean/std."""
    x = images_bhwc_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


@torch.no_grad()
def weighted_knn(train_features, train_labels, test_features, test_labels, k=200,
                 temperature=0.07, chunk=1024):
    """Top-1 and top-5 accuracy (percent) of weighted kNN. Features must be L2-normalised."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train_features.shape[0])
    top1 = top5 = 0
    for start in range(0, test_features.shape[0], chunk):
        q = test_features[start:start + chunk]
        sim = q @ train_features.t()
        sim_k, idx = sim.topk(k, dim=1)
        weights = (sim_k / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[idx], weights)
        ranked = votes.argsort(dim=1, descending=True)
        truth = test_labels[start:start + chunk].view(-1, 1)
        top1 += (ranked[:, :1] == truth).any(dim=1).sum().item()
        top5 += (ranked[:, :min(5, num_classes)] == truth).any(dim=1).sum().item()
    n = test_features.shape[0]
    return 100.0 * top1 / n, 100.0 * top5 / n
