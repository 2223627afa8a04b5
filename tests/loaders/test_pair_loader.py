"""MultiViewLoader: batches as declared, explicit epochs, index subsets, refused arguments, and
a dead loading thread that raises instead of hanging."""
import threading
import time

import numpy as np
import pytest
import torch
from ffcv.loader.epoch_iterator import EpochIterator
from ffcv.pipeline.compiler import Compiler
from ffcv.reader import Reader

import loaders.multiview_decoder as mvd
from fastssl_common.errors import UserError
from loaders.pair_loader import MultiViewLoader, open_beton, tracked_pairs, view_plan


def test_batches_have_the_declared_shapes_and_dtypes(small_beton, python_pipelines):
    reader = Reader(small_beton)
    labels = reader.metadata[f'f{list(reader.handlers).index("label")}']
    loader = MultiViewLoader(small_beton, 5, 24, (('image', 3),), order='sequential',
                             drop_last=False)
    assert len(loader) == 4 and loader.num_samples == reader.num_samples == 16
    sizes, seen = [], []
    for views, indices, batch_labels in loader:
        assert views.dtype == torch.uint8 and views.shape[1:] == (3, 24, 24, 3)
        assert indices.dtype == torch.int64 and indices.shape == (views.shape[0],)
        assert batch_labels.shape == (views.shape[0],)
        assert not batch_labels.is_floating_point()
        np.testing.assert_array_equal(batch_labels.numpy(), labels[indices.numpy()])
        sizes.append(views.shape[0])
        seen += indices.tolist()
    assert sizes == [5, 5, 5, 1] and seen == list(range(16))
    assert len(MultiViewLoader(small_beton, 5, 24, order='sequential')) == 3  # drop_last


def test_set_epoch_chooses_the_draws_and_iterating_advances_it(small_beton, python_pipelines,
                                                               collect):
    loader = MultiViewLoader(small_beton, 4, 16, seed=2, order='random')
    three = collect(loader, 3)
    assert loader.epoch == 4
    again = collect(loader, 3)
    four = collect(loader, 4)
    assert three.keys() == again.keys() == four.keys()
    assert all(np.array_equal(three[i], again[i]) for i in three)
    assert not any(np.array_equal(three[i], four[i]) for i in three)
    loader.set_epoch(3)
    list(loader)  # epoch 3, then the next iteration runs epoch 4
    following = {int(i): v.copy() for views, idx, _ in loader
                 for v, i in zip(views.numpy(), idx.numpy())}
    assert all(np.array_equal(four[i], following[i]) for i in four)


@pytest.mark.parametrize('kind', ['random', 'quasi_random'])
def test_random_order_changes_with_epoch_and_is_reproducible(small_beton, kind):
    loader = MultiViewLoader(small_beton, 4, 32, num_workers=1, seed=3, order=kind)

    def order(epoch):
        loader.set_epoch(epoch)
        return [int(i) for _, idx, _ in loader for i in idx]
    assert order(0) == order(0)
    assert order(0) != order(1)
    assert len(set(order(1))) == len(order(1)) == len(loader) * 4   # each sample once at most
    # a resumed run's fresh loader sees the epoch the uninterrupted one saw
    resumed = MultiViewLoader(small_beton, 4, 32, num_workers=1, seed=3, order=kind)
    resumed.set_epoch(1)
    assert [int(i) for _, idx, _ in resumed for i in idx] == order(1)


def test_index_subset_gives_the_same_views_of_those_samples(small_beton, python_pipelines,
                                                            collect):
    subset = [12, 1, 6, 13, 5]
    loader = MultiViewLoader(small_beton, 2, 16, order='random', indices=subset,
                             drop_last=False)
    assert loader.num_samples == 5 and len(loader) == 3
    part = collect(loader, 1)
    assert sorted(part) == sorted(subset)
    full = collect(MultiViewLoader(small_beton, 4, 16, order='sequential'), 1)
    assert all(np.array_equal(part[i], full[i]) for i in subset)


def test_region_valid_and_index_subset(region_pairs_beton, small_beton, python_pipelines):
    path, _, counts = region_pairs_beton
    subset = np.flatnonzero(counts > 0)[::2]
    region_views = (('frame_a', ((0, 'region'),)), ('frame_b', ((1, 'region'),)))
    loader = MultiViewLoader(path, 2, 8, region_views, order='random', indices=subset,
                             drop_last=False)
    assert np.array_equal(loader.region_valid, counts > 0)
    assert loader.num_samples == len(subset)
    seen = sorted(int(i) for _, indices, _ in loader for i in indices)
    assert seen == sorted(subset)
    assert MultiViewLoader(small_beton, 4, 8, order='sequential').region_valid is None
    assert np.array_equal(tracked_pairs(path), counts > 0)
    assert not tracked_pairs(small_beton).any()


def test_view_plan_numbers_views_and_refuses_malformed_specs():
    assert view_plan((('image', 2),)) == [('image', ((0, 'full'), (1, 'full')), True)]
    assert view_plan((('frame_a', 1), ('frame_b', ((1, 'full'), (2, 'region'))))) == [
        ('frame_a', ((0, 'full'),), True), ('frame_b', ((1, 'full'), (2, 'region')), False)]
    with pytest.raises(ValueError, match='twice'):
        view_plan((('image', 1), ('image', 1)))
    with pytest.raises(ValueError, match='has no views'):
        view_plan((('image', 0),))
    with pytest.raises(ValueError, match='view ids must be 0 .. 1'):
        view_plan((('image', ((0, 'full'), (0, 'full'))),))


def test_bad_files_and_arguments_are_user_errors(small_beton, tmp_path):
    with pytest.raises(UserError, match=r'^dataset file .*missing.beton does not exist$'):
        open_beton(str(tmp_path / 'missing.beton'))
    with pytest.raises(UserError, match=f'dataset file {tmp_path} is a folder, not a file'):
        open_beton(str(tmp_path))
    text = tmp_path / 'notes.beton'
    text.write_text('not a dataset')
    with pytest.raises(UserError, match='is not a readable .beton file'):
        open_beton(str(text))
    with pytest.raises(UserError, match=r"has no 'frame_a' field .*; see the docs"):
        open_beton(small_beton, ('frame_a',), '; see the docs')
    with pytest.raises(UserError, match='data.order'):
        MultiViewLoader(small_beton, 4, 8, order='shuffled')
    with pytest.raises(UserError, match='larger than the dataset'):
        MultiViewLoader(small_beton, 17, 8)
    for indices in ([], [-1, 2], [0.5], [[0, 1]]):
        with pytest.raises(UserError, match='indices'):
            MultiViewLoader(small_beton, 1, 8, indices=indices)
    with pytest.raises(UserError, match='larger than the dataset'):
        MultiViewLoader(small_beton, 3, 8, indices=[0, 1])


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_failing_pipeline_raises_instead_of_hanging(small_beton, monkeypatch, collect):
    """FFCV's own iterator would wait forever once its loading thread died."""
    def broken_decode(*args):
        raise ValueError('simulated decoder failure')

    monkeypatch.setattr(mvd, 'imdecode', broken_decode)
    Compiler.set_enabled(False)
    try:
        loader = MultiViewLoader(small_beton, 4, 16, num_workers=1, order='sequential')
        with pytest.raises(RuntimeError, match='loading thread stopped'):
            collect(loader, 0)
    finally:
        Compiler.set_enabled(True)


def test_an_abandoned_epoch_stops_its_loading_thread(small_beton, python_pipelines):
    loader = MultiViewLoader(small_beton, 2, 8, order='sequential', batches_ahead=1)
    batches = iter(loader)
    next(batches)
    started = [t for t in threading.enumerate() if isinstance(t, EpochIterator)]
    assert started and all(t.is_alive() for t in started)
    batches.close()
    deadline = time.monotonic() + 10
    while any(t.is_alive() for t in started) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.is_alive() for t in started)
