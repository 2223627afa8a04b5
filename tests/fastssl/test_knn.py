"""Weighted kNN against a hand-worked example."""
import math

import torch
import torch.nn.functional as F

from fastssl.knn import weighted_knn


def test_weighted_vote_follows_exp_similarity_over_temperature():
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    query = F.normalize(torch.tensor([[1.0, 0.05]]), dim=1)
    # k = 2: neighbours are bank[0] (class 0) and bank[1] (class 1); class 0 is closer.
    top1, top5 = weighted_knn(bank, labels, query, torch.tensor([0]), k=2, temperature=0.1)
    assert (top1, top5) == (100.0, 100.0)
    # k = 3 with a large temperature: votes ~ equal weights, class 1 has two neighbours.
    s = (query @ bank.t())[0]
    w = [math.exp(v / 10.0) for v in s.tolist()]
    assert w[1] + w[2] > w[0]
    top1, _ = weighted_knn(bank, labels, query, torch.tensor([0]), k=3, temperature=10.0)
    assert top1 == 0.0
