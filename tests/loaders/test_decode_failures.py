"""A stored JPEG damaged after writing: its views come out black (not the pixels of the image
that used the decode buffer before), and the loader counts it for the training loop's
warning."""
import numpy as np
import pytest

from loaders.decode_failures import DecodeFailures
from loaders.pair_loader import MultiViewLoader
from tests.conftest import DAMAGED_SAMPLE as DAMAGED


@pytest.mark.parametrize('compiled', [True, False], ids=['compiled', 'python'])
def test_a_damaged_image_gives_black_views_and_is_counted(small_beton, damaged_beton, compiled,
                                                         collect, request):
    if not compiled:
        request.getfixturevalue('python_pipelines')
    options = dict(batch_size=4, resolution=16, view_fields=(('image', 2),), seed=3,
                   order='sequential')
    damaged = MultiViewLoader(damaged_beton, **options)
    intact = MultiViewLoader(small_beton, **options)
    assert damaged.decode_failures.count == 0 and damaged.decode_failures.lowest_sample is None
    got, expected = collect(damaged, 0), collect(intact, 0)
    assert got.keys() == expected.keys() == set(range(16))
    assert not got[DAMAGED].any() and expected[DAMAGED].any()
    for index in set(got) - {DAMAGED}:
        np.testing.assert_array_equal(got[index], expected[index])
    assert (damaged.decode_failures.count, damaged.decode_failures.lowest_sample) == \
        (1, DAMAGED)
    collect(damaged, 1)                    # every decode counts: once more per epoch
    assert damaged.decode_failures.count == 2
    assert intact.decode_failures.count == 0


def test_the_tally_keeps_the_lowest_sample_of_every_batch_recorded():
    failures = DecodeFailures()
    record = failures.make_recorder()
    record(np.array([False, True, True]), np.array([4, 9, 7], np.uint64))
    record(np.array([True, False]), np.array([8, 2], np.uint64))
    record(np.zeros(3, np.bool_), np.array([0, 1, 2], np.uint64))
    assert (failures.count, failures.lowest_sample) == (3, 7)
