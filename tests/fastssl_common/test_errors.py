"""The CLI contract of fastssl_common.errors.run_cli, through real scripts."""
import os
import signal
import subprocess
import sys
import time

import pytest


def test_a_file_name_with_a_line_break_keeps_the_error_on_one_line(tmp_path, run_script,
                                                                   assert_one_line_error):
    src = tmp_path / 'two\nlines'
    result = run_script('writers/write_images.py', src, tmp_path / 'out.beton')
    assert_one_line_error(result, f'{tmp_path}/two\\nlines does not exist')


@pytest.mark.parametrize('script, args', [
    # an existing file: train.py refuses a missing one before it imports torch
    ('train.py', ['--data.path={beton}']),
    ('eval.py', ['knn', '--eval.checkpoint=missing.pt', '--eval.train_path=missing.beton']),
])
def test_ctrl_c_while_torch_imports_is_interrupted_not_a_traceback(repo, tmp_path, script, args):
    """The scripts reach run_cli before they import torch (a second or two): eval.py's
    settings imported the loaders, so Ctrl-C there was a KeyboardInterrupt traceback."""
    beton = tmp_path / 'data.beton'
    beton.write_bytes(b'not read before the signal')
    args = [arg.format(beton=beton) for arg in args]
    process = subprocess.Popen([sys.executable, os.path.join(repo, script), *args],
                               cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # the moment run_cli has taken over (its SIGTERM handler is in place), well before torch
    # is imported (1.5 s or more on 2 cores); a fixed delay came too early on a loaded machine
    _wait_for_handler(process, signal.SIGTERM)
    with open(f'/proc/{process.pid}/maps') as maps:
        torch_loaded = any('libtorch' in line for line in maps)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err.strip(), out) == (130, 'interrupted', '')
    assert not torch_loaded         # run_cli took over before the slow imports


def _wait_for_handler(process, signum, timeout=60):
    """Wait until ``process`` catches ``signum`` (its caught-signal mask in /proc)."""
    bit = 1 << (signum - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with open(f'/proc/{process.pid}/status') as status:
            caught = next(line for line in status if line.startswith('SigCgt:'))
        if int(caught.split()[1], 16) & bit:
            return
        time.sleep(0.005)
    raise AssertionError(f'{process.args} never caught signal {signum}')


def test_a_stop_after_the_run_has_ended_ends_it_without_a_traceback(repo, tmp_path):
    """A Ctrl-C after the last line, while the interpreter exits (a second of thread and
    multiprocessing clean-up in the writers, an atexit callback here), was a KeyboardInterrupt
    traceback under an exit status of 0."""
    script = tmp_path / 'tool.py'
    script.write_text(
        'import atexit, sys, time\n'
        'from fastssl_common.errors import run_cli\n'
        'atexit.register(lambda: (print("exiting", flush=True), time.sleep(30)))\n'
        'run_cli(lambda argv: print("output: done", flush=True))\n')
    process = subprocess.Popen([sys.executable, str(script)], cwd=repo, text=True,
                               env=dict(os.environ, PYTHONPATH=str(repo)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline() == 'output: done\n'
    assert process.stdout.readline() == 'exiting\n'
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err, out) == (-signal.SIGINT, '', '')
    assert time.monotonic() - started < 10            # not the clean-up's 30 s


def test_require_file_says_why_a_path_is_not_a_file_to_read(tmp_path):
    from fastssl_common.errors import UserError, require_file

    regular = tmp_path / 'boxes.json'
    regular.write_text('[]')
    require_file(str(regular), 'boxes file')
    link = tmp_path / 'linked.json'
    link.symlink_to(tmp_path / 'scratch' / 'boxes.json')
    pipe = tmp_path / 'pipe.json'
    os.mkfifo(pipe)
    expected = {tmp_path / 'none.json': 'does not exist',
                tmp_path: 'is a folder, not a file',
                link: f'is a symbolic link to {tmp_path}/scratch/boxes.json, which does not exist',
                pipe: r'is not a regular file \(a pipe, socket or device\)'}
    for path, why in expected.items():
        with pytest.raises(UserError, match=f'^boxes file {path} {why}$'):
            require_file(str(path), 'boxes file')
