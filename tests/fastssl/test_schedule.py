"""fastssl/schedule.py: the learning rate scales linearly with the global batch, rises linearly
over the warmup and follows a half cosine to zero at the last epoch; no warmup starts at
the full rate."""
import math
from types import SimpleNamespace

import pytest

from fastssl.schedule import learning_rate


def optim(lr=0.03, warmup_epochs=2.0):
    return SimpleNamespace(lr=lr, warmup_epochs=warmup_epochs)


def test_warmup_then_cosine_at_the_global_batch_rate():
    o = optim()
    base = 0.03 * 512 / 256
    assert learning_rate(o, 10, 0.0, 512) == 0.0
    assert learning_rate(o, 10, 1.0, 512) == pytest.approx(base / 2)
    assert learning_rate(o, 10, 2.0, 512) == pytest.approx(base)   # end of warmup: the peak
    assert learning_rate(o, 10, 6.0, 512) == pytest.approx(base / 2)   # half-way down
    assert learning_rate(o, 10, 10.0, 512) == pytest.approx(0.0, abs=1e-12)
    progress = 2.0 + 8.0 / 3
    assert learning_rate(o, 10, progress, 512) == \
        pytest.approx(base * 0.5 * (1 + math.cos(math.pi / 3)))


def test_batch_scaling_and_no_warmup():
    o = optim(lr=0.1, warmup_epochs=0.0)
    assert learning_rate(o, 4, 0.0, 256) == pytest.approx(0.1)
    assert learning_rate(o, 4, 0.0, 64) == pytest.approx(0.025)
    rates = [learning_rate(o, 4, e / 10, 256) for e in range(41)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))   # cosine only goes down


def test_warmup_as_long_as_training_ends_at_the_peak():
    o = optim(lr=0.1, warmup_epochs=3.0)
    assert learning_rate(o, 3, 1.5, 256) == pytest.approx(0.05)
    assert learning_rate(o, 3, 3.0, 256) == pytest.approx(0.1)
