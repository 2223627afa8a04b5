"""What a training run leaves in its folder and shows in TensorBoard, read back with
TensorBoard's own reader: one point per step after a resume from an earlier checkpoint (the
events of the epochs trained again are hidden) and after a new run into a folder whose earlier
run left no checkpoint; the resolved config in the Text tab; a second run into a folder in use
refused; the closing line's command usable as pasted."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastssl.config import load_settings
from fastssl.train_command import main as train_main
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS_PER_EPOCH = 2  # 16 photos, batch 8


def events(run_dir):
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return accumulator


def logged(run_dir, tag='train/loss'):
    return [(e.step, e.value) for e in events(run_dir).Scalars(tag)]


@pytest.fixture(scope='module')
def resumed_from_earlier(small_beton, tiny_args, module_tmp):
    """2 epochs, a checkpoint after each; then the run is taken back to epoch 1 (the later
    checkpoints removed) and resumed to the end. Also what the first run logged."""
    run = module_tmp.mktemp('resumed') / 'run'
    args = tiny_args(small_beton, run, '--train.epochs=2', '--train.checkpoint_every=1')
    Trainer(load_settings(args)).fit()
    first = logged(run)
    for name in ('checkpoint_last.pt', 'checkpoint_e0002.pt'):
        os.remove(run / name)
    Trainer(load_settings(args + ['--train.resume=true'])).fit()
    return run, first


def test_steps_trained_again_after_a_resume_show_once(resumed_from_earlier):
    run, first = resumed_from_earlier
    assert len([n for n in os.listdir(run) if n.startswith('events.')]) == 2
    steps = [step for step, _ in logged(run)]
    # the first run's points of epoch 2 (steps 3, 4) were a second line before
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert logged(run)[:STEPS_PER_EPOCH] == first[:STEPS_PER_EPOCH]
    assert [e.step for e in events(run).Images('pairs')] == [0]  # before the resume: kept


def test_the_config_is_shown_in_the_text_tab(resumed_from_earlier):
    run, _ = resumed_from_earlier
    shown = events(run).Tensors('config/text_summary')
    assert [e.step for e in shown] == [0, STEPS_PER_EPOCH]  # the start, and the resume
    config = yaml.safe_load(shown[-1].tensor_proto.string_val[0].decode())
    assert config == yaml.safe_load((run / 'config.yaml').read_text())
    assert config['train']['resume'] is True


def test_a_new_run_hides_the_curves_of_one_that_left_no_checkpoint(small_beton, tiny_args,
                                                                   tmp_path):
    run = tmp_path / 'run'
    # stopped after epoch 1 of 3, before its first checkpoint (every 2 epochs): events only
    Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=3',
                                    '--train.checkpoint_every=2'))).fit(stop_after=1)
    assert not [n for n in os.listdir(run) if n.endswith('.pt')]
    Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=1',
                                    '--train.seed=1'))).fit()
    newest = max(n for n in os.listdir(run) if n.startswith('events.'))
    os.rename(run / newest, tmp_path / newest)  # what the new run logged, read alone
    only_new = logged(tmp_path)
    os.rename(tmp_path / newest, run / newest)
    assert logged(run) == only_new and len(only_new) == STEPS_PER_EPOCH


@pytest.mark.e2e   # whole train.py runs, 20-45 s: make test-e2e
def test_a_second_run_into_a_folder_in_use_is_refused(small_beton, tiny_args, tmp_path):
    run = tmp_path / 'run'
    command = [sys.executable, os.path.join(REPO, 'train.py'),
               *tiny_args(small_beton, run, '--train.epochs=1000',
                          '--train.checkpoint_every=1000')]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / 'config.yaml').exists():  # written once its run holds the folder
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.2)
        with pytest.raises(UserError, match=f'^{run} is in use by another training run: '):
            Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=1'))).fit()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert len([n for n in os.listdir(run) if n.startswith('events.')]) == 1
    assert first.returncode == 128 + signal.SIGTERM  # it went on, and stopped when told


def test_the_closing_line_names_a_folder_with_spaces_as_one_argument(small_beton, tiny_args,
                                                                     tmp_path, capsys):
    run = tmp_path / 'my runs' / 'r 1'
    assert train_main(tiny_args(small_beton, run, '--train.epochs=1')) == 0
    done = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith('done.'))
    command = done[done.index('(') + 1:done.rindex(')')]
    assert shlex.split(command) == ['tensorboard', '--logdir', str(run)]


def test_keep_checkpoints_keeps_the_newest_numbered_files(small_beton, tiny_args, tmp_path):
    """Every numbered checkpoint stayed: 21 of ResNet-50's (about 8 GB) for the r50 recipe."""
    run = tmp_path / 'run'

    def numbered():
        return sorted(n for n in os.listdir(run) if n.startswith('checkpoint_e'))
    args = tiny_args(small_beton, run, '--train.checkpoint_every=1', '--logging.image_grid=0')
    Trainer(load_settings(args + ['--train.epochs=3', '--train.keep_checkpoints=2'])).fit()
    assert numbered() == ['checkpoint_e0002.pt', 'checkpoint_e0003.pt']
    assert (run / 'checkpoint_last.pt').is_file()
    # it may change on a resume
    Trainer(load_settings(args + ['--train.epochs=4', '--train.keep_checkpoints=1',
                                  '--train.resume=true'])).fit()
    assert numbered() == ['checkpoint_e0004.pt']
    assert torch.load(run / 'checkpoint_last.pt', weights_only=False)['next_epoch'] == 4
