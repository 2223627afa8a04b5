"""Training end to end on tiny real data: finite decreasing loss, exact resume, bad inputs."""


import re
import shutil

import pytest
import torch

from fastssl.config import load_settings
from fastssl.train_command import main
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError


def test_training_epochs_log_finite_losses_and_monitoring(small_beton, tmp_path, tiny_args,
                                                          scalars):
    run = tmp_path / 'run'
    settings = load_settings(
        tiny_args(
            small_beton,
            run,
            '--train.epochs=2',
            '--augment.placement=gpu',
            '--logging.image_grid=4',
        )
    )
    Trainer(settings).fit()
    losses = scalars(run, 'train/loss')
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    for tag in ('train/lr', 'train/pairs_per_s', 'train/data_wait_fraction'):
        assert len(scalars(run, tag)) == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    assert acc.Tags()['images'] == ['pairs']
    assert (run / 'config.yaml').exists() and (run / 'checkpoint_last.pt').exists()


@pytest.mark.parametrize('seed', [0, 1])
def test_steps_on_fixed_views_decrease_the_loss(small_beton, tmp_path, seed, tiny_args):
    """Optimisation makes progress: alternating steps on two fixed batches of real views (each
    batch's negatives are the other's keys) lower the loss."""
    trainer = Trainer(
        load_settings(
            tiny_args(
                small_beton,
                tmp_path / 'run',
                '--augment.placement=gpu',
                '--data.order=sequential',
                '--moco.bn_splits=1',
                '--optim.weight_decay=0',
                f'--train.seed={seed}',
            )
        )
    )
    for group in trainer.optimizer.param_groups:
        group['lr'] = 0.05
    batches = [
        trainer.prepare_views(views, indices, epoch=0)[0] for views, indices, _ in trainer.loader
    ]
    assert len(batches) == 2
    losses = [trainer.train_step(batches[step % 2])[0].item() for step in range(60)]
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[1:11]) / 10, sum(losses[-10:]) / 10
    assert last < 0.9 * first, losses


def test_non_finite_loss_stops_with_the_step_named(small_beton, tmp_path, tiny_args):
    from fastssl_common.errors import UserError

    trainer = Trainer(
        load_settings(
            tiny_args(
                small_beton,
                tmp_path / 'run',
                '--optim.lr=1e30',
                '--train.epochs=3',
                '--augment.placement=none',
            )
        )
    )
    # counted as the progress bar counts; fp32 already, and nothing saved to resume from
    with pytest.raises(UserError, match=r'^non-finite loss at step 2 of epoch 1; stopped '
                                        r'without saving: lower optim.lr, then start again '
                                        r'\(no checkpoint was written yet\)$'):
        trainer.fit()
    assert not (tmp_path / 'run' / 'checkpoint_last.pt').exists()


def test_resume_after_interruption_matches_uninterrupted_run(small_beton, tmp_path, tiny_args,
                                                             model_state):
    full, split = tmp_path / 'full', tmp_path / 'split'
    common = ('--train.epochs=3', '--train.checkpoint_every=1', '--augment.placement=gpu')
    Trainer(load_settings(tiny_args(small_beton, full, *common))).fit()
    Trainer(load_settings(tiny_args(small_beton, split, *common))).fit(stop_after=1)
    assert model_state(split)[0]['queue_ptrs'] is not None
    Trainer(load_settings(tiny_args(small_beton, split, *common, '--train.resume=true'))).fit()
    (a, opt_a), (b, opt_b) = model_state(full), model_state(split)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for sa, sb in zip(opt_a['state'].values(), opt_b['state'].values()):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])


def test_resuming_on_other_data_is_refused(small_beton, tmp_path, tiny_args):
    """A checkpoint records its data's sample and allocation tables: another file, or the same
    path rewritten, is refused before any state is loaded. A checkpoint without that record
    (written before it existed) still meets the queue's check: the queue is clamped to what
    one epoch of data.path fills, and on a smaller file torch reported a size mismatch."""
    import cv2
    import numpy as np

    from writers.write_images import write_images

    rng = np.random.default_rng(0)
    for i in range(8):
        folder = tmp_path / 'few' / f'c{i % 2}'
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 255, (48, 48, 3), np.uint8))
    few = str(tmp_path / 'few.beton')
    write_images(str(tmp_path / 'few'), few, workers=1, progress=False)
    data = tmp_path / 'data.beton'
    shutil.copyfile(small_beton, data)
    run = tmp_path / 'run'
    common = ('--data.batch_size=4', '--moco.queue_size=12', '--moco.bn_splits=1')
    Trainer(load_settings(tiny_args(str(data), run, *common, '--train.epochs=1'))).fit()
    checkpoint = run / 'checkpoint_last.pt'

    def refused(path, message):
        with pytest.raises(UserError, match=re.escape(message)):
            Trainer(load_settings(tiny_args(str(path), run, *common, '--train.epochs=2',
                                            '--train.resume=true')))
    refused(few, f'data.path={few} is not the data checkpoint {checkpoint} was trained on '
                 f'({data}): their sample and allocation tables differ; resume on {data} or a '
                 f'copy of it, or start a new train.run_dir')
    shutil.copyfile(few, data)
    refused(data, f'data.path={data} was rewritten after checkpoint {checkpoint} was written '
                  f'(its sample and allocation tables differ): resume on the data the run was '
                  f'started on, or start a new train.run_dir')
    state = torch.load(checkpoint, weights_only=False)
    del state['data_digest']
    torch.save(state, checkpoint)
    refused(few, f'checkpoint {checkpoint} holds a queue of 12 keys, but {few} fills only 4 '
                 f'(moco.queue_size is clamped to what one epoch fills): resume on the data the '
                 f'run was started on')


def test_bad_config_inputs_give_one_line(tmp_path, small_beton, run_script, assert_one_line_error):
    assert_one_line_error(
        run_script('train.py', '--config-file', tmp_path / 'missing.yaml'), 'missing.yaml'
    )
    bad = tmp_path / 'bad.yaml'
    bad.write_text('data:\n  path: x.beton\n  batch_sise: 4\n')
    assert_one_line_error(
        run_script('train.py', '--config-file', bad), 'data.batch_sise', 'bad.yaml'
    )
    assert_one_line_error(
        run_script('train.py', f'--data.path={small_beton}', '--train.epochs=many'), 'train.epochs'
    )
    assert_one_line_error(
        run_script('train.py', f'--data.path={small_beton}', '--optim.nesterov=true'),
        'optim.nesterov',
    )


def test_bad_data_inputs_give_one_line(tmp_path, small_beton, run_script, assert_one_line_error,
                                       assert_main_one_line_error, tiny_args):
    """train.py's contract as a process once; the other cases through the same ``run_cli`` in
    this process."""
    run = tmp_path / 'run'
    assert_one_line_error(
        run_script('train.py', *tiny_args(tmp_path / 'nope.beton', run)), 'nope.beton'
    )
    not_beton = tmp_path / 'notes.beton'
    not_beton.write_bytes(b'this is not a dataset' * 10)
    assert_main_one_line_error(main, tiny_args(not_beton, run), 'notes.beton')
    assert_main_one_line_error(
        main,
        tiny_args(small_beton, run, '--data.batch_size=64', '--moco.bn_splits=1',
                  '--moco.queue_size=64'),
        'data.batch_size 64', 'use data.batch_size <= 16',
    )
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    assert_main_one_line_error(main, tiny_args(small_beton, blocker / 'run'), str(blocker))
    assert not run.exists()  # failed runs leave no folder behind


def test_an_image_damaged_after_writing_is_warned_about_each_epoch(damaged_beton, tmp_path,
                                                                    tiny_args, capsys):
    """... by training after each epoch, and by each pass of the kNN monitor that read it (its
    one file as memory bank and queries: decoded once a pass)."""
    from tests.conftest import DAMAGED_SAMPLE

    settings = load_settings(tiny_args(damaged_beton, tmp_path / 'run', '--train.epochs=2',
                                       '--data.order=sequential', '--data.batch_size=4',
                                       f'--logging.knn_train_path={damaged_beton}'))
    Trainer(settings).fit()
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'did not decode' in line]
    end = (f'(lowest sample {DAMAGED_SAMPLE}); the file was damaged after it was written: '
           f'python -m loaders.verify {damaged_beton} checks the whole file')
    monitor = [f'warning: 1 image(s) of {damaged_beton} did not decode in the kNN monitor '
               f'({when}) and were evaluated as black images {end}'
               for when in ('before training', 'epoch 2')]
    assert warnings == [monitor[0]] + [
        f'warning: 1 image(s) of {damaged_beton} did not decode in epoch {epoch} and were '
        f'trained as black views {end}' for epoch in (1, 2)] + [monitor[1]]
