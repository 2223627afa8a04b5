"""Video variants end to end: FTI pairs frame i with frame i+k; the frames baseline trains too."""
import numpy as np
import pytest
from ffcv.reader import Reader

from fastssl.config import load_settings
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError
from loaders.pair_loader import MultiViewLoader


def test_fti_views_come_from_the_two_frames_of_each_pair(video_betons):
    """View 0 is rendered from frame_a, view 1 from frame_b, each with its own draws: equal to
    rendering both views from one field (DCT-scaled decoding is off: its scale depends on the
    views an op renders, so it could differ between the two set-ups)."""
    _, pairs = video_betons
    fti = MultiViewLoader(pairs, 4, 32, (('frame_a', 1), ('frame_b', 1)), num_workers=1,
                          seed=5, order='sequential', dct_scaling=False)
    def render(field):
        loader = MultiViewLoader(pairs, 4, 32, ((field, 2),), num_workers=1, seed=5,
                                 order='sequential', dct_scaling=False)
        return {int(i): v.numpy().copy() for views, idx, _ in loader for v, i in zip(views, idx)}

    got = {int(i): v.numpy().copy() for views, idx, _ in fti for v, i in zip(views, idx)}
    from_a, from_b = render('frame_a'), render('frame_b')
    assert got.keys() == from_a.keys() and len(got) == Reader(pairs).num_samples
    for i in got:
        assert np.array_equal(got[i][0], from_a[i][0])  # view 0: frame a, view-0 draws
        assert np.array_equal(got[i][1], from_b[i][1])  # view 1: frame b, view-1 draws
    # the two frames differ (the clip pans), except in its still tail
    assert sum(not np.array_equal(from_a[i][1], from_b[i][1]) for i in got) > len(got) // 2


@pytest.mark.parametrize('variant,which', [('fti', 1), ('mocov2_frames', 0)])
def test_video_variants_train_and_log(video_betons, tmp_path, variant, which, tiny_args, scalars):
    path = video_betons[which]
    run = tmp_path / variant
    Trainer(load_settings(tiny_args(path, run, f'--train.variant={variant}',
                                    '--train.epochs=1', '--augment.placement=cpu'))).fit()
    losses = scalars(run, 'train/loss')
    assert losses and all(np.isfinite(losses))
    assert (run / 'checkpoint_last.pt').exists()


def test_variant_with_the_wrong_dataset_names_the_writer(video_betons, small_beton, tmp_path,
                                                         tiny_args):
    with pytest.raises(UserError, match="no 'frame_a' field.*write_video_pairs.py"):
        Trainer(load_settings(tiny_args(small_beton, tmp_path / 'r', '--train.variant=fti')))
    with pytest.raises(UserError, match="no 'video_id' field.*write_video_frames.py"):
        Trainer(load_settings(tiny_args(small_beton, tmp_path / 'r',
                                        '--train.variant=mocov2_frames')))
    assert not (tmp_path / 'r').exists()
