"""Region Tracker training end to end: tracked-proposal pairs from the real writer -> rt and
fti_rt on the CPU, each term logged, the region term masked where a pair has no track."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fastssl.config import load_settings
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError
from loaders.pair_loader import tracked_pairs


@pytest.fixture(scope='module')
def tracked_beton(video_betons, module_tmp):
    """Pairs of the planted-cut clip with real selective-search proposals tracked by the
    writer (gap 2, up to 4 per pair)."""
    from writers.write_video_pairs import write_video_pairs
    clip = str(Path(video_betons[0]).with_name('clip.mp4'))
    out = str(module_tmp.mktemp('tracked') / 'pairs.beton')
    write_video_pairs(clip, out, gap=2, proposals=4, workers=1, progress=False)
    valid = tracked_pairs(out)
    assert valid.sum() >= 8, valid  # the clip pans over real texture: most pairs keep tracks
    return out


# fti_rt's two terms share one queue: it must hold one step's keys, 2 x batch 8
SHARED_QUEUE = '--moco.queue_size=16'


@pytest.fixture(scope='session')
def region_args(tiny_args):
    """``region_args(beton, run, variant, *extra)``: ``tiny_args`` for one epoch of a region
    variant with the CPU augment and a 2-pair image grid."""
    def args(beton, run, variant, *extra):
        return tiny_args(beton, run, f'--train.variant={variant}', '--train.epochs=1',
                         '--augment.placement=cpu', '--logging.image_grid=2', *extra)
    return args


def test_fti_rt_logs_each_term_and_their_weighted_sum(tracked_beton, tmp_path, region_args,
                                                      scalars):
    run = tmp_path / 'fti_rt'
    trainer = Trainer(load_settings(region_args(tracked_beton, run, 'fti_rt',
                                                '--moco.region_weight=0.5', SHARED_QUEUE)))
    views, indices, _ = next(iter(trainer.loader))
    assert views.shape[1] == 4  # frame query, frame key, region query, region key
    trainer.fit()
    total, frame, region = (np.array(scalars(run, f'train/loss{tag}'))
                            for tag in ('', '_frame', '_region'))
    assert len(total) == len(trainer.loader) and np.isfinite(total).all()
    assert np.allclose(total, frame + 0.5 * region, rtol=1e-5)
    assert (region > 0).all()


def test_fti_rt_masks_untracked_pairs_out_of_the_region_term(tracked_beton, tmp_path, region_args):
    trainer = Trainer(load_settings(region_args(tracked_beton, tmp_path / 'r', 'fti_rt',
                                                SHARED_QUEUE)))
    views, indices, _ = next(iter(trainer.loader))
    normalised, _ = trainer.prepare_views(views, indices, epoch=0)
    none = torch.zeros(len(indices), dtype=torch.bool)
    total, frame, region = trainer.train_step(normalised, none)
    # no tracked pair: the step trains the frame term alone, and has no region loss to log
    assert torch.isnan(region) and total == pytest.approx(frame.item())
    mask = trainer.tracked(indices)
    assert torch.equal(mask, torch.from_numpy(tracked_pairs(tracked_beton))[indices])


def test_separate_queues_for_frame_and_region_keys(tracked_beton, tmp_path, region_args):
    trainer = Trainer(load_settings(region_args(tracked_beton, tmp_path / 'r', 'fti_rt',
                                                '--moco.separate_queues=true')))
    assert trainer.model.queues.shape[0] == 2
    views, indices, _ = next(iter(trainer.loader))
    before = trainer.model.queues.clone()
    trainer.train_step(trainer.prepare_views(views, indices, epoch=0)[0])
    queues = trainer.model.queues
    assert queues.shape[1] == len(indices)  # one step's keys fill each (clamped) queue
    assert not torch.isclose(queues, before).all(dim=2).any()  # every row of both replaced
    assert not torch.allclose(queues[0], queues[1])  # frame keys vs region keys


def test_rt_trains_on_tracked_pairs_only(tracked_beton, tmp_path, region_args, scalars):
    run = tmp_path / 'rt'
    trainer = Trainer(load_settings(region_args(tracked_beton, run, 'rt')))
    assert trainer.loader.num_samples == tracked_pairs(tracked_beton).sum()
    seen = np.concatenate([idx.numpy() for _, idx, _ in trainer.loader])
    assert tracked_pairs(tracked_beton)[seen].all()
    trainer.fit()
    assert np.isfinite(scalars(run, 'train/loss_region')).all()
    assert (run / 'checkpoint_last.pt').exists()


def test_rt_says_which_pairs_it_leaves_out(video_betons, tmp_path, region_args, encode_clip,
                                           capsys):
    """A flat video next to the clip gives pairs without a track: rt skips them, and says so
    (and its batch-size error counts the pairs it reads, not the file's)."""
    from writers.write_video_pairs import write_video_pairs
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'clip.mp4').symlink_to(Path(video_betons[0]).with_name('clip.mp4'))
    encode_clip(src / 'flat.mp4', [np.full((64, 96, 3), 128, np.uint8)] * 24)
    out = str(tmp_path / 'mixed.beton')
    write_video_pairs(str(src), out, gap=2, proposals=4, workers=1, progress=False)
    valid = tracked_pairs(out)
    assert 8 <= valid.sum() < len(valid)
    Trainer(load_settings(region_args(out, tmp_path / 'rt', 'rt')))
    assert (f'note: train.variant=rt trains on the {valid.sum()} pairs of {out} with a tracked '
            f'region; the other {(~valid).sum()} are not loaded') in capsys.readouterr().out
    with pytest.raises(UserError, match=re.escape(
            f'data.batch_size 64 is larger than the dataset {out} ({valid.sum()} samples of '
            f'its {len(valid)} that this loader reads): use data.batch_size <= {valid.sum()}')):
        Trainer(load_settings(region_args(out, tmp_path / 'rt64', 'rt', '--data.batch_size=64',
                                          '--moco.queue_size=64')))


def test_region_variants_refuse_pairs_without_tracks(video_betons, tmp_path, region_args):
    with pytest.raises(UserError, match='no pair has a tracked region.*--proposals N'):
        Trainer(load_settings(region_args(video_betons[1], tmp_path / 'r', 'rt')))
    assert not (tmp_path / 'r').exists()


def test_steps_without_a_tracked_pair_stay_out_of_the_logged_region_loss():
    """The logged region loss is a mean over the steps that had one: a batch without a
    tracked pair used to be logged as a perfect 0 and pulled the window's mean down."""
    from fastssl.monitor import Window

    window = Window()
    for step in ([2.0, 1.0, 3.0], [1.5, 1.5, float('nan')], [2.5, 1.0, 5.0]):
        window.add(torch.tensor(step), pairs=8)
    stats = window.stats(0.1, ('frame', 'region'), torch.device('cpu'))
    assert stats['train/loss'] == pytest.approx(2.0)
    assert stats['train/loss_frame'] == pytest.approx(7 / 6)
    assert stats['train/loss_region'] == pytest.approx(4.0)
    window = Window()
    window.add(torch.tensor([1.5, 1.5, float('nan')]), pairs=8)
    assert 'train/loss_region' not in window.stats(0.1, ('frame', 'region'), torch.device('cpu'))


def test_region_term_is_the_mean_over_tracked_pairs_only(tracked_beton, tmp_path, region_args):
    """A mixed mask: the region term equals the mean of the tracked samples' own InfoNCE
    losses (not a mean over the batch, not other samples')."""
    trainer = Trainer(load_settings(region_args(tracked_beton, tmp_path / 'r', 'fti_rt',
                                                SHARED_QUEUE)))
    views, indices, _ = next(iter(trainer.loader))
    normalised, _ = trainer.prepare_views(views, indices, epoch=0)
    mask = torch.zeros(len(indices), dtype=torch.bool)
    mask[[0, 3, 4]] = True
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    # the step's own forward pass, replayed from the same state and key-shuffle draws
    expected = trainer.model.forward_terms([(normalised[0], normalised[1]),
                                            (normalised[2], normalised[3])])[0]
    trainer.model.load_state_dict(state)
    torch.set_rng_state(rng)
    total, frame, region = trainer.train_step(normalised, mask)
    assert frame.item() == pytest.approx(expected[0].mean().item(), rel=1e-5)
    assert region.item() == pytest.approx(expected[1][mask].mean().item(), rel=1e-5)
    assert region.item() != pytest.approx(expected[1].mean().item(), rel=1e-3)


@pytest.mark.parametrize('bad, key', [('--moco.region_weight=-1', 'moco.region_weight'),
                                      ('--moco.frame_weight=nan', 'moco.frame_weight'),
                                      ('--augment.region_scale_min=0', 'augment.region_scale'),
                                      ('--augment.region_context_max=-0.1',
                                       'augment.region_context')])
def test_bad_region_settings_name_their_key(tracked_beton, tmp_path, bad, key, region_args):
    with pytest.raises(UserError, match=key):
        Trainer(load_settings(region_args(tracked_beton, tmp_path / 'r', 'fti_rt', bad)))
