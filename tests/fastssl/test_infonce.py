"""fastssl/infonce.py: InfoNCE against a hand computation; per-sample losses for masked terms;
the loss in float32 whatever the autocast dtype of the features."""
import math

import pytest
import torch
import torch.nn.functional as F

from fastssl.infonce import info_nce


def test_info_nce_equals_hand_computation():
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=1)
    k = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=1)
    queue = F.normalize(torch.tensor([[1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), dim=1)
    loss, logits = info_nce(q, k, queue, temperature=0.5)
    expected = 0.0
    for i in range(2):
        pos = (q[i] @ k[i]).item() / 0.5
        negs = [(q[i] @ n).item() / 0.5 for n in queue]
        expected += -pos + math.log(math.exp(pos) + sum(math.exp(n) for n in negs))
        assert logits[i, 0].item() == pytest.approx(pos, abs=1e-6)
    assert loss.item() == pytest.approx(expected / 2, abs=1e-6)


def test_per_sample_losses_and_logit_layout():
    torch.manual_seed(0)
    q, k = (F.normalize(torch.randn(5, 8), dim=1) for _ in range(2))
    queue = F.normalize(torch.randn(7, 8), dim=1)
    mean, logits = info_nce(q, k, queue, temperature=0.2)
    each, _ = info_nce(q, k, queue, temperature=0.2, reduction='none')
    assert logits.shape == (5, 1 + 7) and each.shape == (5,)
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.2)
    torch.testing.assert_close(logits[:, 1:], q @ queue.t() / 0.2)
    torch.testing.assert_close(each.mean(), mean)
    # a key equal to its query, far from every negative, costs less than a random key
    closer, _ = info_nce(q, q, queue, temperature=0.2, reduction='none')
    assert (closer < each).sum() >= 4


def test_loss_is_float32_for_half_precision_features():
    torch.manual_seed(0)
    q, k = (F.normalize(torch.randn(4, 8), dim=1) for _ in range(2))
    queue = F.normalize(torch.randn(6, 8), dim=1)
    loss, _ = info_nce(q.bfloat16(), k.bfloat16(), queue.bfloat16(), temperature=0.2)
    reference, _ = info_nce(q, k, queue, temperature=0.2)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=0.02)
