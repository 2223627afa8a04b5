"""The loaders' numeric arguments are checked up front: one-line UserError naming the
argument, its range and the value, before any file or FFCV object is opened."""
import numpy as np
import pytest

from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import MultiViewLoader

BAD_PAIR = [  # (keyword overrides, words the message must hold)
    (dict(batch_size=0), ['batch_size must be a whole number >= 1, got 0']),
    (dict(batch_size=-2), ['batch_size', '>= 1', '-2']),
    (dict(batch_size=2.5), ['batch_size', 'whole number', '2.5']),
    (dict(batch_size=True), ['batch_size', 'True']),
    (dict(resolution=0), ['resolution must be a whole number >= 1, got 0']),
    (dict(resolution=-5), ['resolution', '-5']),
    (dict(resolution=64.5), ['resolution', '64.5']),
    (dict(resolution=False), ['resolution', 'False']),
    (dict(ratio=(-1, 2)), ['ratio', '(-1, 2)']),
    (dict(ratio=(0, 0)), ['ratio', '(0, 0)']),
    (dict(ratio=(2, 1)), ['ratio', '(2, 1)']),
    (dict(ratio=(1, float('inf'))), ['ratio', 'inf']),
    (dict(scale=(1.5, 0.2)), ['scale', '(1.5, 0.2)']),
    (dict(scale=(0, 1)), ['scale', '0.0 < lo', '(0, 1)']),
    (dict(scale=(0.2, 1.5)), ['scale', '1.5']),
    (dict(scale=0.5), ['scale', '0.5']),
    (dict(scale=(0.2, True)), ['scale', 'True']),
    (dict(flip_prob=2), ['flip_prob must be a number from 0 to 1, got 2']),
    (dict(flip_prob=-0.1), ['flip_prob', '-0.1']),
    (dict(flip_prob=float('nan')), ['flip_prob', 'nan']),
    (dict(seed=-1), ['seed', '-1']),
    (dict(seed=1.5), ['seed', '1.5']),
    (dict(seed=2**64), ['seed', str(2**64)]),
]
BAD_EVAL = [
    (dict(batch_size=0), ['batch_size must be a whole number >= 1, got 0']),
    (dict(batch_size=2.5), ['batch_size', '2.5']),
    (dict(resolution=0), ['resolution must be a whole number >= 1, got 0']),
    (dict(resolution=-5), ['resolution', '-5']),
    (dict(resolution=64.5), ['resolution', '64.5']),
    (dict(resolution=True), ['resolution', 'True']),
]
CASES = ([pytest.param(MultiViewLoader, kw, words, id=f'pair-{kw}') for kw, words in BAD_PAIR]
         + [pytest.param(make_eval_loader, kw, words, id=f'eval-{kw}') for kw, words in BAD_EVAL])


@pytest.mark.parametrize('make, overrides, words', CASES)
def test_bad_numbers_are_refused_before_loading(make, overrides, words, tmp_path):
    missing = str(tmp_path / 'absent.beton')  # never opened: the checks come first
    with pytest.raises(UserError) as caught:
        make(missing, **{'batch_size': 2, 'resolution': 16, **overrides})
    message = str(caught.value)
    assert '\n' not in message
    for word in words:
        assert word in message


def test_numpy_numbers_are_accepted(small_beton):
    loader = MultiViewLoader(small_beton, np.int64(4), np.int32(8), seed=np.uint32(1),
                             scale=np.array([0.5, 1.0]), flip_prob=np.float32(1),
                             order='sequential')
    # Whole epochs: an abandoned FFCV iterator would leave its loading thread running
    shapes = {tuple(views.shape) for views, _, _ in loader}
    assert shapes == {(4, 2, 8, 8, 3)}
    shapes = {tuple(images.shape)
              for images, _ in make_eval_loader(small_beton, np.int64(4), np.int64(8))}
    assert shapes == {(4, 8, 8, 3)}
