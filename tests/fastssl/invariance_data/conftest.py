"""Fixtures of the invariance dataset reader tests: a GOT-10k train split made of real photos
(``got_root``; the trees of every format come from ``invariance_trees``)."""
import pytest


@pytest.fixture(scope='module')
def got_root(module_tmp, invariance_trees):
    return invariance_trees.got10k_tree(module_tmp.mktemp('got'))
