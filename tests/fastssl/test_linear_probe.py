"""Linear probe and kNN on feature tensors: separable classes are found, the L-BFGS probe
reaches scikit-learn's logistic-regression optimum, and chance stays chance."""
import pytest
import torch
import torch.nn.functional as F

from fastssl.knn import weighted_knn
from fastssl.linear_probe import topk_accuracy, train_linear_probe


def blobs(n_per_class, classes=8, dim=64, noise=0.3, seed=0, scale=1.0, offset=0.0):
    """Gaussian classes around random centres; ``scale``/``offset`` mimic raw ReLU features."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123))
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[labels] + noise * torch.randn(labels.numel(), dim, generator=g)
    return scale * x + offset, labels


@pytest.mark.parametrize('optimizer', ['sgd', 'lbfgs'])
def test_probe_separates_separable_classes_at_any_feature_scale(optimizer):
    # Raw features of 1000x scale and a large offset: standardisation must absorb both.
    x_train, y_train = blobs(40, scale=1000.0, offset=50.0, seed=0)
    x_val, y_val = blobs(20, scale=1000.0, offset=50.0, seed=1)
    probe = train_linear_probe(x_train, y_train, 8, epochs=20, optimizer=optimizer, lr=0.1,
                               weight_decay=1e-4, batch_size=64)
    top1, top5 = topk_accuracy(probe, x_val, y_val)
    assert top1 >= 99.0 and top5 == 100.0
    torch.testing.assert_close(probe.mean, x_train.mean(0))


def test_top5_of_five_classes_or_fewer_is_none():
    x, y = blobs(20, classes=5, seed=3)
    probe = train_linear_probe(x, y, 5, epochs=5)
    top1, top5 = topk_accuracy(probe, x, y)
    assert top1 > 50.0 and top5 is None


def test_probe_on_random_labels_is_at_chance_on_held_out_data():
    x_train, _ = blobs(40, seed=0)
    x_val, _ = blobs(40, seed=1)
    g = torch.Generator().manual_seed(5)
    y_train, y_val = torch.randint(0, 8, (320,), generator=g), torch.randint(0, 8, (320,),
                                                                             generator=g)
    probe = train_linear_probe(x_train, y_train, 8, epochs=30)
    top1, _ = topk_accuracy(probe, x_val, y_val)
    assert top1 < 25.0  # chance is 12.5%


def test_lbfgs_probe_matches_sklearn_logistic_regression():
    """Same objective, independent solver: mean cross-entropy + wd/2 ||W||^2 on standardised
    features equals sklearn's 0.5 ||W||^2 + C * sum(cross-entropy) with C = 1 / (wd N)."""
    from sklearn.linear_model import LogisticRegression
    x, y = blobs(60, classes=3, dim=10, noise=1.5, seed=2)
    wd = 1e-2
    probe = train_linear_probe(x, y, 3, epochs=500, optimizer='lbfgs', weight_decay=wd)
    standard = ((x - probe.mean) / probe.std).double().numpy()
    reference = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-10, max_iter=10000)
    reference.fit(standard, y.numpy())
    with torch.no_grad():
        ours = F.softmax(probe(x), dim=1).double().numpy()
    assert abs(ours - reference.predict_proba(standard)).max() < 5e-4
    top1, = topk_accuracy(probe, x, y, ks=(1,))
    assert 60.0 < top1 < 100.0  # overlapping classes: a real optimum, not a separable one


def test_weighted_knn_on_separable_features():
    x_train, y_train = blobs(40, seed=0)
    x_val, y_val = blobs(20, seed=1)
    top1, top5 = weighted_knn(F.normalize(x_train, dim=1), y_train, F.normalize(x_val, dim=1),
                              y_val, k=20, temperature=0.07)
    assert (top1, top5) == (100.0, 100.0)
