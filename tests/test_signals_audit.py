"""SIGTERM and Ctrl-C landing at awkward moments of train.py and eval.py: before the steps
begin, during an epoch end's checkpoint write or monitors, while the TensorBoard log closes,
and while ``eval.py invariance`` writes its outputs. The CLI runs are real subprocesses; the
moment is hit exactly: the signal is sent as a named function is called or returns."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torchvision

from fastssl.config import load_settings
from fastssl.preemption import Preempted
from fastssl.trainer import Trainer
from tests.conftest import REPO, photo_folder

# python -c DRIVER MODULE FUNCTION EVENT SIGNUM SCRIPT ARGS...: SCRIPT run as the program,
# sent SIGNUM as MODULE's FUNCTION (a dotted name: Class.method) is first called or returns
DRIVER = """
import functools, importlib, os, runpy, sys
module, name, event, signum = sys.argv[1:5]
*path, attribute = name.split('.')
owner = functools.reduce(getattr, path, importlib.import_module(module))
original, calls = getattr(owner, attribute), []
def signalled(*args, **kwargs):
    calls.append(1)
    if len(calls) == 1 and event == 'call':
        os.kill(os.getpid(), int(signum))
    result = original(*args, **kwargs)
    if len(calls) == 1 and event == 'return':
        os.kill(os.getpid(), int(signum))
    return result
setattr(owner, attribute, signalled)
sys.argv = sys.argv[5:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_signalled(where, signum, script, *args):
    """``script`` run with ``signum`` sent at ``where`` = (module, function, event)."""
    return subprocess.run([sys.executable, '-c', DRIVER, *where, str(int(signum)),
                           os.path.join(REPO, script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_sigterm_before_the_steps_stops_train_py_with_one_line(small_beton, tiny_args,
                                                               tmp_path):
    # it ended the process without a word (killed by SIGTERM's default action)
    run = tmp_path / 'run'
    result = run_signalled(('fastssl.training_parts', 'TrainingParts.create_model', 'call'),
                           signal.SIGTERM, 'train.py', *tiny_args(small_beton, run))
    assert result.returncode == 143, result.stderr
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'stopped by SIGTERM'
    assert not run.exists()


class Interrupted(Exception):
    pass


def test_sigint_while_the_log_closes_after_the_last_epoch_lets_the_run_finish(
        small_beton, tiny_args, tmp_path):
    # it ended a finished run as interrupted (train.py: exit status 130)
    run = tmp_path / 'run'
    trainer = Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=1')))
    create_monitor = trainer.create_monitor

    def monitor_signalled_on_close():
        monitor = create_monitor()
        close = monitor.close
        monitor.close = lambda: os.kill(os.getpid(), signal.SIGINT) or close()
        return monitor
    trainer.create_monitor = monitor_signalled_on_close

    def interrupted(signum, frame):  # what train.py's Ctrl-C would do, without ending pytest
        raise Interrupted
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        assert trainer.fit() == str(run / 'checkpoint_e0001.pt')
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('method, call, every', [
    ('save', 1, 1),             # the first epoch end's checkpoint write
    ('_monitor_knn', 2, 2),     # its kNN monitor (the first call is before training)
])
def test_a_signal_at_an_epoch_end_stops_there(small_beton, tiny_args, tmp_path, method, call,
                                              every):
    # the monitors still ran, then a step of the next epoch and a second checkpoint write
    run = tmp_path / 'run'
    trainer = Trainer(load_settings(tiny_args(
        small_beton, run, '--train.epochs=2', f'--train.checkpoint_every={every}',
        f'--logging.knn_train_path={small_beton}', '--logging.knn_every=1')))
    original, calls = getattr(trainer, method), []

    def signalled(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)
    setattr(trainer, method, signalled)
    knn = trainer._monitor_knn
    measured = []
    trainer._monitor_knn = lambda when: measured.append(when) or knn(when)
    with pytest.raises(Preempted) as stopped:
        trainer.fit()
    assert str(stopped.value).startswith(f'stopped by SIGINT after epoch 1: checkpoint {run}/')
    assert measured == ['before training'] + (['epoch 1'] if method == '_monitor_knn' else [])
    saved = torch.load(run / 'checkpoint_last.pt', weights_only=False)
    assert (saved['next_epoch'], saved['next_step']) == (1, 0)


def test_a_stop_while_invariance_writes_its_outputs_leaves_all_of_them(tmp_path):
    # the TensorBoard runs were left without the JSON report beside them
    root = tmp_path / 'sets'
    photos = photo_folder(tmp_path / 'photos', size=48, copies=6)
    for target in os.listdir(photos):
        for index in range(2):
            os.makedirs(root / target / f's{index}')
            for image in range(3):
                os.link(photos / target / f'{index * 3 + image}.jpg',
                        root / target / f's{index}' / f'{image}.jpg')
    checkpoint = tmp_path / 'r18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    out = tmp_path / 'out'
    result = run_signalled(
        ('fastssl.invariance_report', 'log_tensorboard', 'return'), signal.SIGTERM, 'eval.py',
        'invariance', '--invariance.kind=folders', f'--invariance.root={root}',
        f'--invariance.checkpoints={checkpoint}', '--invariance.resolution=32',
        '--invariance.bootstrap=100', '--invariance.num_workers=1',
        f'--invariance.output={out}/report.json', f'--invariance.run_dir={out}/tb')
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'stopped by SIGTERM'
    assert 'Traceback' not in result.stderr
    with open(out / 'report.json') as handle:
        assert json.load(handle)['checkpoints'][0]['name'] == 'r18'
    assert sorted(os.listdir(out / 'tb')) == ['r18', 'random_init']
