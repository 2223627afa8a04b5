"""MoCo v2 pieces against hand computations on small tensors."""
import pytest
import torch
import torch.nn.functional as F

from fastssl.infonce import info_nce
from fastssl.moco import MoCo


def tiny_moco(**kwargs):
    torch.manual_seed(0)
    args = dict(arch='resnet18', proj_hidden=32, proj_dim=8, queue_size=10, momentum=0.9,
                temperature=0.2, bn_splits=2)
    args.update(kwargs)
    return MoCo(**args)


def test_enqueue_writes_at_pointer_and_wraps_around():
    model = tiny_moco(queue_size=10)
    first = torch.arange(6 * 8, dtype=torch.float32).view(6, 8)
    model.enqueue(first)
    assert model.queue_ptrs[0].item() == 6
    assert torch.equal(model.queue[:6], first)
    second = -torch.arange(6 * 8, dtype=torch.float32).view(6, 8) - 1
    before = model.queue.clone()
    model.enqueue(second)
    assert model.queue_ptrs[0].item() == 2  # (6 + 6) mod 10
    assert torch.equal(model.queue[6:10], second[:4])
    assert torch.equal(model.queue[0:2], second[4:6])
    assert torch.equal(model.queue[2:6], before[2:6])


def test_momentum_update_is_ema_of_query_parameters():
    model = tiny_moco(momentum=0.9)
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    k_before = [p.clone() for p in model.encoder_k.parameters()]
    q_now = [p.clone() for p in model.encoder_q.parameters()]
    model.momentum_update()
    for k_old, q, k_new in zip(k_before, q_now, model.encoder_k.parameters()):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)
    assert all(not p.requires_grad for p in model.encoder_k.parameters())


def test_forward_returns_normalised_keys_and_logit_shape():
    model = tiny_moco(queue_size=12)
    x = torch.randn(4, 3, 32, 32)
    loss, logits, keys = model(x, x.flip(3))
    assert logits.shape == (4, 13) and torch.isfinite(loss)
    assert torch.allclose(keys.norm(dim=1), torch.ones(4), atol=1e-5)
    assert not keys.requires_grad


def test_key_shuffle_is_undone():
    """With plain BN in eval mode the shuffle cannot change the result: keys match order."""
    model = tiny_moco(bn_splits=1).eval()
    x = torch.randn(6, 3, 32, 32)
    keys = model.encode_keys(x)
    direct = F.normalize(model.encoder_k(x), dim=1)
    assert torch.allclose(keys, direct, atol=1e-5)


@pytest.mark.parametrize('term_queues', [(0, 0), (0, 1)])
def test_two_terms_score_against_their_queue_and_enqueue_into_it(term_queues):
    """Frame and region terms: each term's per-sample losses are InfoNCE of its own queries
    and keys against its queue as it was before the step; keys go to the term's queue."""
    model = tiny_moco(queue_size=12, term_queues=term_queues).eval()  # eval: BN per sample
    views = [torch.randn(3, 3, 32, 32) for _ in range(4)]
    before = model.queues.clone()
    losses, logits, keys = model.forward_terms([(views[0], views[1]), (views[2], views[3])])
    for t, (q_view, k_view) in enumerate([(0, 1), (2, 3)]):
        q = F.normalize(model.encoder_q(views[q_view]), dim=1)
        k = F.normalize(model.encoder_k(views[k_view]), dim=1)  # already momentum-updated
        expected, _ = info_nce(q, k, before[term_queues[t]], 0.2, reduction='none')
        assert losses[t].shape == (3,) and logits[t].shape == (3, 13)
        assert torch.allclose(losses[t], expected, atol=1e-5)
        assert torch.allclose(keys[t], k, atol=1e-5)
    model.enqueue_terms(keys)
    if term_queues == (0, 0):
        assert torch.equal(model.queues[0, :6], torch.cat(keys))
        assert model.queue_ptrs.tolist() == [6]
    else:
        assert torch.equal(model.queues[0, :3], keys[0])
        assert torch.equal(model.queues[1, :3], keys[1])
        assert model.queue_ptrs.tolist() == [3, 3]


def test_forward_terms_rejects_a_term_count_it_was_not_built_for():
    model = tiny_moco(term_queues=(0, 0))
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match='built for 2 terms'):
        model.forward_terms([(x, x)])
