"""Fixtures of the invariance dataset reader tests: a GOT-10k train split made of real photos
(``got_root``; the trees of every format come from ``invariance_trees``)."""
import pytest


@pytest.fixture(scope='module')
def got_root(tmp_path_factory, invariance_trees):
    return invariance_trees.got10k_tree(tmp_path_factory.mktemp('got'))
