"""The console entry points of the installed distribution and run their command: each
prints its help, a user error is one line with exit status 2, as ``python script.py``, and
eval's SIGTERM stops it cleanly."""
import os
import signal
import subprocess
import sys
import sysconfig
import time
from importlib.metadata import distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the installed distribution's metadata (a stale fastssl.egg-info in the checkout may shadow it)
INSTALLED, = (d for d in distributions(path=[sysconfig.get_paths()['purelib']])
              if d.metadata['Name'] == 'fastssl')
SCRIPTS = [e.name for e in INSTALLED.entry_points if e.group == 'console_scripts']
BIN = Path(sys.executable).parent


def run(name, *args):
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_each_command_is_installed_and_prints_its_help(name):
    assert os.access(BIN / name, os.X_OK), f'{name} is not installed next to {sys.executable}'
    result = run(name, '--help')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'usage' in result.stdout.lower()


def test_a_user_error_is_one_line(tmp_path, assert_one_line_error):
    assert_one_line_error(run('fastssl-train', f'--data.path={tmp_path}/none.beton'),
                          'none.beton')
    assert_one_line_error(run('fastssl-eval', 'nonsense'), 'nonsense')


def test_every_command_has_its_entry_point():
    assert {'fastssl-train', 'fastssl-eval', 'fastssl-write-images', 'fastssl-write-video-frames',
            'fastssl-write-video-pairs', 'fastssl-inspect-pairs', 'fastssl-verify',
            'fastssl-render-invariance-sets'} <= set(SCRIPTS)


@pytest.mark.parametrize('name', ['fastssl-merge-betons', 'fastssl-inspect-pairs',
                                  'fastssl-verify', 'fastssl-eval', 'fastssl-train'])
def test_the_usage_line_names_the_command_that_was_run(name):
    assert run(name, '--help').stdout.startswith(f'usage: {name} ')


@pytest.mark.parametrize('key', ['linear.lr', 'linear.weight_decay', 'knn.temperature'])
def test_a_float_beyond_float32_is_refused_by_its_range(key, assert_one_line_error):
    """3.5e38 is a finite float but no float32: torch failed with a RuntimeError."""
    assert_one_line_error(run('fastssl-eval', key.split('.')[0], '--eval.checkpoint=c.pt',
                              '--eval.train_path=t.beton', f'--{key}=3.5e38'),
                          f'{key} must be in ', 'got 3.5e+38')


@pytest.fixture(scope='module')
def resnet18_file(module_tmp):
    import torch
    import torchvision
    path = module_tmp.mktemp('backbone') / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.mark.parametrize('command', [[sys.executable, 'eval.py'], [str(BIN / 'fastssl-eval')]],
                         ids=['eval.py', 'fastssl-eval'])
def test_eval_stopped_by_sigterm_cleans_up(command, resnet18_file, small_beton, tmp_path):
    """A scheduler's time limit or ``kill``: as for Ctrl-C, the output folders the run made
    are removed, one line says so, exit status 143 (it used to die with no word, leaving them)."""
    made = tmp_path / 'new'
    args = ['knn', f'--eval.checkpoint={resnet18_file}', f'--eval.train_path={small_beton}',
            '--eval.resolution=32', '--eval.batch_size=8', '--eval.num_workers=1',
            '--eval.device=cpu', f'--eval.output={made}/deeper/knn.json']
    evaluation = subprocess.Popen([*command, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (made / 'deeper').exists():    # made before the work, as it starts
            assert evaluation.poll() is None, evaluation.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.002)
        evaluation.send_signal(signal.SIGTERM)
        _, stderr = evaluation.communicate(timeout=60)
    finally:
        evaluation.kill()
        evaluation.wait()
    assert evaluation.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == 'stopped by SIGTERM'
    assert 'Traceback' not in stderr
    assert not made.exists()
