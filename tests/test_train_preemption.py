"""Preemption: SIGTERM or SIGINT during training saves a checkpoint at the next step boundary
(mid-epoch with its step) and exits with 128 + the signal after one line saying how to
resume; resuming continues exactly, so the final weights equal an uninterrupted run's."""
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from fastssl.config import load_settings
from fastssl.preemption import Preempted
from fastssl.trainer import Trainer
from tests.conftest import REPO, photo_folder
from writers.write_images import write_images

STEPS = 8  # per epoch: 32 photos, batch 4


@pytest.fixture(scope='module')
def photos(module_tmp):
    """32 real photos: enough steps per epoch for a signal to land mid-epoch."""
    root = module_tmp.mktemp('photos32')
    out = root / 'photos.beton'
    write_images(str(photo_folder(root / 'src', copies=8)), str(out), max_resolution=64,
                 workers=1, progress=False)
    return str(out)


@pytest.fixture(scope='module')
def run_args(photos, tiny_args):
    """``run_args(run_dir, *extra)``: two epochs of 8 steps on the 32 photos."""
    def args(run_dir, *extra):
        return tiny_args(photos, run_dir, '--data.batch_size=4', '--moco.bn_splits=1',
                         '--train.epochs=2', *extra)
    return args


@pytest.fixture(scope='module')
def uninterrupted(run_args, module_tmp, model_state):
    run = module_tmp.mktemp('uninterrupted')
    Trainer(load_settings(run_args(run))).fit()
    return model_state(run)


def assert_same_state(a, b):
    (model_a, optim_a), (model_b, optim_b) = a, b
    assert model_a.keys() == model_b.keys()
    for key in model_a:
        assert torch.equal(model_a[key], model_b[key]), key
    for sa, sb in zip(optim_a['state'].values(), optim_b['state'].values(), strict=True):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])


def signal_on_step(trainer, step, signum):
    """Make ``trainer`` receive ``signum`` as its ``step``-th optimizer step starts."""
    original, calls = trainer.train_step, [0]

    def train_step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)
    trainer.train_step = train_step


@pytest.mark.parametrize('step, where, saved', [
    (3, 'after step 3 of 8 of epoch 1', 'checkpoint_last.pt'),
    (STEPS, 'after epoch 1', 'checkpoint_e0001.pt'),   # the last step: an epoch-end checkpoint
])
def test_sigint_stops_after_the_step_and_resume_is_exact(run_args, tmp_path, uninterrupted,
                                                         model_state, step, where, saved):
    run = tmp_path / 'run'
    trainer = Trainer(load_settings(run_args(run)))
    signal_on_step(trainer, step, signal.SIGINT)
    with pytest.raises(Preempted) as stopped:
        trainer.fit()
    assert stopped.value.exit_code == 130
    assert str(stopped.value) == (f'stopped by SIGINT {where}: checkpoint {run / saved}; to '
                                  f'continue, run the same command with --train.resume=true')
    resumed = Trainer(load_settings(run_args(run, '--train.resume=true')))
    assert (resumed.start_epoch, resumed.start_step) == divmod(step, STEPS)
    resumed.fit()
    assert_same_state(model_state(run), uninterrupted)


@pytest.mark.e2e   # whole train.py runs, 20-45 s: make test-e2e
def test_sigterm_to_train_py_mid_epoch_then_resume_equals_uninterrupted(
        run_args, tmp_path, uninterrupted, model_state, run_script):
    run = tmp_path / 'run'
    args = run_args(run, '--logging.progress=true')
    process = subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO)
    try:
        # off a terminal the progress is plain lines on stdout: wait for a step to be done
        for line in process.stdout:
            if re.match(r'epoch 1/2: +\d+% [1-9]/8 ', line):
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert 'Traceback' not in err
    stop = [line for line in err.splitlines() if line.startswith('stopped by')]
    assert len(stop) == 1, err
    assert re.fullmatch(r'stopped by SIGTERM after (step \d of 8 of epoch 1|epoch 1): '
                        rf'checkpoint {re.escape(str(run))}/checkpoint_(last|e0001)\.pt; to '
                        r'continue, run the same command with --train\.resume=true', stop[0])
    resumed = run_script('train.py', *args, '--train.resume=true')
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming from' in resumed.stderr
    assert_same_state(model_state(run), uninterrupted)
