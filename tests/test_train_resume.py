"""Resuming a run: a checkpoint written with other settings is refused with every differing
key named (old and new values), settings that may change are listed when resuming, a refusal
leaves no run folder behind."""
import os
import shutil

import pytest
import torch

from fastssl.checkpoint import hold_run_dir
from fastssl.config import load_settings
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError


@pytest.fixture(scope='module')
def finished(small_beton, tiny_args, module_tmp):
    """A run folder after one epoch (checkpoint_e0001.pt, checkpoint_last.pt)."""
    run = module_tmp.mktemp('finished') / 'run'
    Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=1'))).fit()
    return run


@pytest.fixture
def resume(finished, small_beton, tiny_args, tmp_path):
    """``resume(*extra)``: build a resumed trainer on a copy of the finished run."""
    run = tmp_path / 'run'
    shutil.copytree(finished, run)

    def build(*extra):
        return Trainer(load_settings(tiny_args(small_beton, run, '--train.resume=true', *extra)))

    def edit(change):
        """Apply ``change(state)`` to the last checkpoint; returns its path."""
        path = run / 'checkpoint_last.pt'
        state = torch.load(path, weights_only=False)
        change(state)
        torch.save(state, path)
        return path
    build.run, build.edit = run, edit
    return build


def test_a_changed_config_is_refused_naming_every_key(resume):
    with pytest.raises(UserError) as refused:
        resume('--model.proj_dim=32', '--moco.queue_size=16', '--augment.flip_prob=0',
               '--train.epochs=3')
    assert str(refused.value) == (
        f"checkpoint {resume.run / 'checkpoint_last.pt'} was written with another config: "
        f"augment.flip_prob=0.5 (now 0.0), moco.queue_size=8 (now 16), model.proj_dim=128 "
        f"(now 32); resume with its values or start a new train.run_dir")


def test_settings_that_may_change_are_named_when_resuming(resume, capsys):
    trainer = resume('--train.epochs=3', '--optim.lr=0.25', '--data.num_workers=2')
    assert (trainer.start_epoch, trainer.start_step) == (1, 0)
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"resuming from {resume.run / 'checkpoint_last.pt'} at epoch 2 "
                           f"(changed: data.num_workers=1 (now 2), optim.lr=0.5 (now 0.25), "
                           f"train.epochs=1 (now 3), train.run_dir=")  # the copied folder
    assert 'train.resume' not in line


def test_the_resume_line_follows_every_check(resume, tmp_path, capsys):
    """A resume refused after the checkpoint was read (here a missing kNN file; a read-only
    run folder is the same) said 'resuming from ...' before its error."""
    with pytest.raises(UserError, match='missing.beton'):
        resume(f'--logging.knn_train_path={tmp_path}/missing.beton')
    assert 'resuming from' not in capsys.readouterr().err
    resume()
    assert capsys.readouterr().err.startswith('resuming from')


def test_a_run_folder_in_use_is_named_before_the_resume_line(resume, capsys):
    """It printed 'resuming from ...' and then refused the folder as in use."""
    with hold_run_dir(str(resume.run)):
        with pytest.raises(UserError, match=f'^{resume.run} is in use by another training run'):
            resume('--train.epochs=3')
    assert capsys.readouterr().err == ''


def test_a_finished_run_resumed_says_so_and_writes_nothing(resume, capsys):
    """It said 'resuming from ... at epoch 2', wrote a new event file and config.yaml, and
    ended with 'done.'."""
    before = {name: os.stat(resume.run / name).st_mtime_ns for name in os.listdir(resume.run)}
    trainer = resume('--train.epochs=1')
    assert capsys.readouterr().err.startswith(    # (changed: train.run_dir=...: a copy)
        f"{resume.run / 'checkpoint_last.pt'} has finished all 1 epochs of the run: nothing to "
        f"train (raise train.epochs to train on) (changed: train.run_dir=")
    assert trainer.fit() is None
    assert {name: os.stat(resume.run / name).st_mtime_ns
            for name in os.listdir(resume.run)} == before


def test_a_copy_of_the_data_elsewhere_is_accepted(resume, small_beton, tmp_path, capsys):
    copy = tmp_path / 'local' / 'train.beton'
    copy.parent.mkdir()
    shutil.copyfile(small_beton, copy)
    trainer = resume(f'--data.path={copy}', '--train.epochs=2')
    assert (trainer.start_epoch, trainer.start_step) == (1, 0)
    assert f"data.path='{small_beton}' (now '{copy}')" in capsys.readouterr().err


def test_tensors_that_do_not_fit_are_described_past_the_colon(resume):
    """A checkpoint without a saved config (older ones) is checked by its tensors alone."""
    resume.edit(lambda state: state.pop('config'))
    with pytest.raises(UserError, match=r'does not match the model: Error\(s\) in loading '
                                        r'state_dict for MoCo: size mismatch for queues: '):
        resume('--model.proj_dim=32')


def test_a_mid_epoch_checkpoint_needs_the_same_steps_per_epoch(resume):
    resume.edit(lambda state: state.update(next_epoch=1, next_step=1, steps_per_epoch=5))
    with pytest.raises(UserError, match=r'stopped after step 1 of the 5 of epoch 2, but an '
                                        r'epoch of .* now has 2 steps'):
        resume()


@pytest.mark.parametrize('state, held', [
    ({'epoch': 1, 'arch': 'resnet50', 'state_dict': {}, 'optimizer': {}},
     'arch, epoch, optimizer, state_dict'),       # the official MoCo's layout
    ({'conv1.weight': torch.zeros(1)}, 'conv1.weight'),     # an exported backbone
    ([1, 2], 'list'),
])
def test_a_checkpoint_that_is_not_a_training_checkpoint_is_refused(resume, state, held):
    torch.save(state, resume.run / 'checkpoint_last.pt')
    with pytest.raises(UserError, match=rf'checkpoint_last.pt is not a fastssl training '
                                        rf'checkpoint \(it holds {held}\)'):
        resume()


@pytest.mark.parametrize('key, value', [
    ('optimizer', None), ('next_epoch', 'x'), ('next_epoch', -1), ('rng', None),
    ('rng', {'torch': 1}), ('steps_per_epoch', 0), ('model', [1]),
])
def test_an_edited_entry_is_named_not_a_traceback(resume, key, value):
    """Each would fail deep inside torch's loaders or the epoch arithmetic (AttributeError,
    TypeError) after the keys were found to be there."""
    path = resume.edit(lambda state: state.update({key: value}))
    with pytest.raises(UserError, match=rf"checkpoint {path}: invalid '{key}' entry \(damaged "
                                        rf"or edited\?\)"):
        resume('--train.epochs=2')


def test_an_rng_state_that_cannot_be_restored_is_named(resume):
    # not a generator's state
    path = resume.edit(lambda state: state['rng'].update(torch=torch.zeros(3, dtype=torch.uint8)))
    with pytest.raises(UserError, match=rf'checkpoint {path}: its GradScaler or RNG state '
                                        rf'cannot be restored \(RuntimeError: '):
        resume('--train.epochs=2')


def test_a_folder_named_as_the_last_checkpoint_is_named(resume):
    """It was passed over for the numbered checkpoints (or 'has no checkpoint'), and a run
    would have failed at its first save."""
    last = resume.run / 'checkpoint_last.pt'
    last.unlink()
    last.mkdir()
    with pytest.raises(UserError, match=rf'^{last} is a folder, not a checkpoint: move it out '
                                        r'of the way$'):
        resume('--train.epochs=2')


def test_fewer_epochs_than_the_checkpoint_finished_are_refused(resume):
    resume.edit(lambda state: state.update(next_epoch=3))     # as if it had trained 3 epochs
    before = (resume.run / 'config.yaml').read_text()
    with pytest.raises(UserError, match=r'has finished 3 epochs, more than train.epochs=2: '
                                        r'raise train.epochs'):
        resume('--train.epochs=2')
    assert (resume.run / 'config.yaml').read_text() == before


def test_refusals_leave_no_run_folder(small_beton, tiny_args, tmp_path):
    run = tmp_path / 'run'
    with pytest.raises(UserError, match='has no checkpoint'):
        Trainer(load_settings(tiny_args(small_beton, run, '--train.resume=true')))
    with pytest.raises(UserError, match='missing.beton'):
        Trainer(load_settings(tiny_args(small_beton, run,
                                        f'--logging.knn_train_path={tmp_path}/missing.beton')))
    assert not run.exists()
