"""The console entry points of the installed distribution and run their command: each
prints its help, and a user error is one line with exit status 2, as ``python script.py``."""
import os
import subprocess
import sys
import sysconfig
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
