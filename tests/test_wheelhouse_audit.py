"""scripts/build_wheelhouse.py reuses what a wheelhouse already holds: a wheel cut short there
(an interrupted copy or download) is removed with one line and made again, never kept for the
offline machine's pip to refuse ('Wheel ... is invalid'), nor read into a BadZipFile
traceback.

The runs need no network and no compiler: the build folder's tool stamp says its private
environment is ready (nothing runs in it here), and PATH holds no C++ compiler.
"""
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / 'scripts' / 'build_wheelhouse.py'
WHEELHOUSE = REPO / 'dist' / 'wheelhouse'


@pytest.fixture
def ffcv_wheel():
    wheels = sorted(WHEELHOUSE.glob(f"ffcv-{importlib.metadata.version('ffcv')}-*.whl"))
    assert wheels, f'no ffcv wheel in {WHEELHOUSE}: `make install` or `make wheelhouse` builds it'
    return wheels[-1]


@pytest.fixture
def build_dir(tmp_path):
    """A --build-dir whose private environment counts as set up, as after an earlier run."""
    spec = importlib.util.spec_from_file_location('build_wheelhouse', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stamp = tmp_path / 'build' / 'venv' / '.tools'
    stamp.parent.mkdir(parents=True)
    stamp.write_text(' '.join(script.BUILD_TOOLS))
    return stamp.parent.parent


def cut_short(wheel, target):
    target.write_bytes(wheel.read_bytes()[:wheel.stat().st_size // 2])
    return target


def build(out, build_dir, *args):
    env = {**os.environ, 'PATH': str(Path(sys.executable).parent)}     # no c++ on it
    return subprocess.run([sys.executable, str(SCRIPT), '--ffcv-only', '--out', str(out),
                           '--build-dir', str(build_dir), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_cut_short_ffcv_wheel_is_removed_and_built_again(tmp_path, ffcv_wheel, build_dir):
    out = tmp_path / 'wheelhouse'
    out.mkdir()
    damaged = cut_short(ffcv_wheel, out / ffcv_wheel.name)
    result = build(out, build_dir)
    # it was a zipfile.BadZipFile traceback, and every later run kept the damaged wheel
    assert 'Traceback' not in result.stderr, result.stderr
    removed, error = result.stderr.strip().splitlines()
    assert removed.startswith(f'removed {damaged} (') and 'cut short' in removed
    # rebuilding it is the next step: here, with no compiler, one line saying what it needs
    assert result.returncode == 2 and error.startswith('error: building the ffcv wheel needs c++')
    assert not damaged.exists()


def test_cut_short_dependency_wheel_is_removed(tmp_path, ffcv_wheel, build_dir):
    out = tmp_path / 'wheelhouse'
    out.mkdir()
    intact = out / ffcv_wheel.name
    intact.write_bytes(ffcv_wheel.read_bytes())
    damaged = cut_short(ffcv_wheel, out / 'numba-0.68.1-cp311-cp311-manylinux_2_28_x86_64.whl')
    result = build(out, build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'kept {intact}')
    # it was kept: the next full build counted it among the wheels and exited 0
    assert result.stderr.startswith(f'removed {damaged} (File is not a zip file')
    assert sorted(out.iterdir()) == [intact]


@pytest.mark.parametrize('present, needle', [
    ((), 'holds no torch wheel (built with WHEELHOUSE_TORCH=0)'),
    (('torch-2.14.1-cp{tag}-cp{tag}-manylinux_2_28_x86_64.whl',
      'numpy-2.3.0-cp399-cp399-manylinux_2_28_x86_64.whl'),
     'holds wheels for another Python than this python3'),
])
def test_an_offline_install_from_a_wheelhouse_it_cannot_use_says_why(ffcv_wheel, tmp_path,
                                                                     present, needle):
    """pip said 'No matching distribution found for torch==2.14.1' (or numpy>=1.24, which is
    there, for another Python), after making the venv."""
    wheelhouse = tmp_path / 'wheelhouse'
    wheelhouse.mkdir()
    (wheelhouse / ffcv_wheel.name).symlink_to(ffcv_wheel)
    # fastssl's own wheel marks a complete wheelhouse: every install step goes --no-index
    names = ('fastssl-0.1.0-py3-none-any.whl',) + present
    tag = subprocess.run(['python3', '-c', 'import sys; print("%d%d" % sys.version_info[:2])'],
                         capture_output=True, text=True, check=True).stdout.strip()
    for name in names:
        (wheelhouse / name.format(tag=tag)).touch()
    venv = tmp_path / 'venv'
    result = subprocess.run(['make', '--no-print-directory', 'install',
                             f'WHEELHOUSE={wheelhouse}', f'VENV={venv}'],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f'error: {wheelhouse} {needle}'), result.stderr
    assert not venv.exists()
