"""Weighted kNN against a hand-worked example; feature extraction keeps the stored labels."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ffcv.reader import Reader

from fastssl.knn import extract_features, weighted_knn
from fastssl_common.formats import LABEL
from loaders.eval_loader import make_eval_loader


def test_weighted_vote_follows_exp_similarity_over_temperature():
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    query = F.normalize(torch.tensor([[1.0, 0.05]]), dim=1)
    # k = 2: neighbours are bank[0] (class 0) and bank[1] (class 1); class 0 is closer.
    top1, top5 = weighted_knn(bank, labels, query, torch.tensor([0]), k=2, temperature=0.1)
    assert (top1, top5) == (100.0, None)  # 2 classes: every top 5 holds the truth
    # k = 3 with a large temperature: votes ~ equal weights, class 1 has two neighbours.
    s = (query @ bank.t())[0]
    w = [math.exp(v / 10.0) for v in s.tolist()]
    assert w[1] + w[2] > w[0]
    top1, _ = weighted_knn(bank, labels, query, torch.tensor([0]), k=3, temperature=10.0)
    assert top1 == 0.0


def test_top5_counts_a_truth_ranked_sixth_as_a_miss_and_is_none_up_to_five_classes():
    """One bank image per class, each at a known angle from the query: the vote ranks the
    classes by closeness, so the truth's rank is set by hand."""
    angles = torch.tensor([3.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # class 0 is the farthest
    bank = torch.stack([angles.cos(), angles.sin()], dim=1)
    query = torch.tensor([[1.0, 0.0]])
    for truth, expected in ((6, (0.0, 0.0)), (0, (0.0, 0.0)), (5, (0.0, 100.0)), (2, (0.0, 100.0)),
                            (1, (100.0, 100.0))):
        assert weighted_knn(bank, torch.arange(7), query, torch.tensor([truth]), k=7,
                            temperature=0.1) == pytest.approx(expected)
    # the same query among 5 classes: its truth is last, but a top 5 holds every class
    assert weighted_knn(bank[:5], torch.arange(5), query, torch.tensor([0]), k=5,
                        temperature=0.1) == [0.0, None]


def test_leave_one_out_equals_each_query_against_the_bank_without_it():
    """The reference: one query at a time, its own row removed from the bank."""
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(40, 8, generator=g), dim=1)
    labels = torch.randint(0, 7, (40,), generator=g)
    hits = [0, 0]
    for i in range(40):
        others = torch.arange(40) != i
        top = weighted_knn(bank[others], labels[others], bank[i:i + 1], labels[i:i + 1], k=10,
                           temperature=0.1)
        hits = [h + t / 100.0 for h, t in zip(hits, top)]
    ours = weighted_knn(bank, labels, bank, labels, k=10, temperature=0.1, leave_one_out=True,
                        chunk=16)                                  # chunks off the diagonal
    assert ours == pytest.approx([100.0 * h / 40 for h in hits])
    # with itself in the bank every query finds its own label at similarity 1
    assert weighted_knn(bank, labels, bank, labels, k=10, temperature=0.1)[0] > ours[0]


def test_extracted_labels_are_the_stored_labels_over_many_small_batches(small_beton):
    """FFCV refills the same label buffers batch after batch: the labels kept for the kNN bank
    must be copies, or later batches overwrite earlier ones on the CPU (they did: a bank of one
    class)."""
    reader = Reader(small_beton)
    column = f'f{list(reader.field_names).index(LABEL)}'
    stored = torch.as_tensor(reader.metadata[column].astype(np.int64))
    loader = make_eval_loader(small_beton, batch_size=2, resolution=32, num_workers=1)
    features, labels = extract_features(lambda x: x.mean(dim=(2, 3)), loader,
                                        torch.device('cpu'))
    assert len(set(stored.tolist())) == 4
    assert torch.equal(labels, stored) and features.shape == (len(stored), 3)


def test_sparse_labels_vote_as_the_classes_present():
    """A list file may label with any integers: the vote has one column per class of the bank
    (3 here, so no top 5), not one per integer up to 3e9 (a 192 GB allocation at 16 queries),
    and a query of a class the bank lacks is a miss."""
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    queries = F.normalize(bank[:6] + 0.3 * torch.randn(6, 8, generator=g), dim=1)
    dense = torch.arange(12) % 3
    sparse = torch.tensor([0, 20000, 3_000_000_000])[dense]
    expected = weighted_knn(bank, dense, queries, dense[:6], k=4, temperature=0.1)
    assert expected[1] is None and expected[0] > 0
    assert weighted_knn(bank, sparse, queries, sparse[:6], k=4, temperature=0.1) == expected
    assert weighted_knn(bank, dense, bank[:1], torch.tensor([7]), k=4,
                        temperature=0.1) == [0.0, None]
