"""train.py (and eval.py) as a user runs them: settings out of range refused in one line
before any folder exists, ``--help`` into a pipe that closes early, and progress off a
terminal as plain lines without carriage returns."""
import os
import re
import shutil
import subprocess
import sys

import pytest


@pytest.mark.parametrize('setting, value, message', [
    ('data.batch_size', 0, 'data.batch_size must be > 0, got 0'),
    ('data.batch_size', -8, 'data.batch_size must be > 0, got -8'),
    ('data.resolution', -5, 'data.resolution must be >= 32, got -5'),
    # each in range, together beyond the machine: a torch allocation traceback in FFCV
    ('data.resolution', 100000, 'data.resolution 100000 with data.batch_size'),
    ('optim.lr', -0.03, 'optim.lr must be in (0, 1e+38), got -0.03'),   # with warmup it trained
    # Numba (FFCV's threads) refuses more threads than cores, with a traceback
    ('data.num_workers', 4096, 'data.num_workers=4096 exceeds the'),
])
def test_out_of_range_is_one_line_before_any_folder(small_beton, tmp_path, tiny_args,
                                                    run_script, assert_one_line_error,
                                                    setting, value, message):
    run = tmp_path / 'run'
    result = run_script('train.py', *tiny_args(small_beton, run, '--optim.warmup_epochs=1',
                                               f'--{setting}={value}'))
    assert_one_line_error(result, message)
    assert not run.exists()


@pytest.mark.parametrize('given, message', [
    (['--data.batch_size=0'], 'data.batch_size must be > 0, got 0'),
    (['--data.path=missing.beton'], 'dataset file missing.beton does not exist'),
    (['--data.path'], "cannot parse argument '--data.path' (use --section.key=value)"),
])
def test_settings_and_a_missing_dataset_are_refused_before_torch_loads(repo, tmp_path, given,
                                                                       message):
    # a typo cost the seconds of importing torch and FFCV before its one line
    probe = ('import sys\n'
             'from fastssl.train_command import cli\n'
             'try:\n'
             '    cli()\n'
             'finally:\n'
             '    print("torch" in sys.modules, "ffcv" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', probe, '--data.path=missing.beton', *given],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, 'PYTHONPATH': repo})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f'error: {message}'], result.stderr
    assert result.stdout == 'False False\n'


def test_data_verify_refuses_a_damaged_beton_before_training(small_beton, tmp_path, tiny_args,
                                                             run_script, assert_one_line_error):
    """The same size as written, so the cheap check at open passes; the full check does not."""
    damaged = tmp_path / 'damaged.beton'
    shutil.copy(small_beton, damaged)
    shutil.copy(small_beton + '.json', str(damaged) + '.json')   # the writer's sidecar
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    run = tmp_path / 'run'
    result = run_script('train.py', *tiny_args(damaged, run, '--data.verify=true'))
    assert_one_line_error(result, f'{damaged}: page ', 'differs from the hash')
    assert not run.exists()


@pytest.mark.parametrize('command', [['train.py'], ['eval.py'], ['eval.py', 'export']],
                         ids=' '.join)
def test_help_into_a_pipe_that_closes_ends_quietly(repo, command):
    result = subprocess.run(['bash', '-c', f'"{sys.executable}" {" ".join(command)} --help '
                             f'| head -1'], capture_output=True, text=True, cwd=repo)
    assert result.stdout.startswith(f"usage: {' '.join(command)} ")
    assert result.stderr == ''   # no BrokenPipeError traceback


@pytest.mark.e2e   # whole train.py runs, 20-45 s: make test-e2e
def test_progress_off_a_terminal_is_lines_without_carriage_returns(small_beton, tmp_path,
                                                                   tiny_args, run_script):
    result = run_script('train.py', *tiny_args(small_beton, tmp_path / 'run', '--train.epochs=1',
                                               '--logging.progress=true'))
    assert result.returncode == 0, result.stderr
    assert '\r' not in result.stdout + result.stderr
    # the bar's figures, one line per 10 % of the epoch (here: each of its 2 steps)
    lines = [line for line in result.stdout.splitlines() if line.startswith('epoch 1/1: ')]
    assert [re.match(r'epoch 1/1: +(\d+)% (\d)/2 ', line).groups() for line in lines] == [
        ('0', '0'), ('50', '1'), ('100', '2')]
    assert re.search(r' loss=\d+\.\d{3}, lr=\d\.\d{4}, pairs_s=\d+$', lines[-1])
