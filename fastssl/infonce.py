"""InfoNCE with a key queue, as in MoCo: the positive is class 0 among 1 + K candidates."""
import torch
import torch.nn.functional as F


def info_nce(q, k, queue, temperature, reduction='mean'):
    """Contrastive loss of queries against their keys and a queue of negatives.

    q: (B, D) normalised queries; k: (B, D) normalised positive keys (no grad);
    queue: (K, D) normalised negatives. Returns (loss, logits (B, 1 + K)) where
    logits = [q·k, q·queue] / T and the target of every row is index 0; ``loss`` is the batch
    mean, or the (B,) per-sample losses with ``reduction='none'`` (for masked terms).
    """
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.t()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits.float(), labels, reduction=reduction), logits
