"""FFCV's quasi-random order drawn from the epoch alone (the loader-level check, resume
included: test_pair_loader.py)."""
import numpy as np
from ffcv.fields.basics import IntDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.transforms import ToTensor

from loaders.quasi_random import draw_from_the_built_table


def quasi_random_order(path):
    loader = Loader(path, batch_size=4, num_workers=1, order=OrderOption.QUASI_RANDOM, seed=1,
                    pipelines={'image': None, 'label': [IntDecoder(), ToTensor()]})
    return loader.traversal_order


def test_each_epoch_is_drawn_from_the_table_as_built(small_beton):
    stock = quasi_random_order(small_beton)
    # FFCV's own draws depend on the draws before them
    assert not np.array_equal(stock.sample_order(0), stock.sample_order(0))
    fixed, fresh = quasi_random_order(small_beton), quasi_random_order(small_beton)
    draw_from_the_built_table(fixed)
    draw_from_the_built_table(fresh)
    first = [fixed.sample_order(epoch) for epoch in range(3)]
    np.testing.assert_array_equal(fresh.sample_order(2), first[2])
    np.testing.assert_array_equal(fixed.sample_order(0), first[0])
    assert not np.array_equal(first[0], first[1])
    assert sorted(first[1]) == list(range(16))
