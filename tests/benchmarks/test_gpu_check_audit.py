"""benchmarks.gpu_check and gpu_node given a partial bundle (a copy to the node cut short, or
the wrong files): one ``error:`` line before any stage runs, not a traceback, nor a train step
that fails after the cuda tests."""
import shutil

import pytest

from benchmarks.gpu_node import CheckError, plan_install
from tests.benchmarks.test_gpu_check import gpu_check, refused
from tests.benchmarks.test_gpu_node import fake_wheel


@pytest.mark.unit
@pytest.mark.parametrize('damage', ['truncated', 'images'])
def test_pairs_beton_the_train_step_would_refuse_is_refused_first(small_beton, tmp_path,
                                                                   damage):
    data = tmp_path / 'data'
    data.mkdir()
    pairs = data / 'pairs.beton'
    shutil.copy(small_beton, pairs)      # a .beton of images: no frame pairs, no regions
    if damage == 'truncated':
        with open(pairs, 'r+b') as handle:
            handle.truncate(pairs.stat().st_size // 2)
    # a budget too small for any stage: before the fix the run ended 'done' with exit 0
    line = refused(gpu_check('--dry-run', '--out', tmp_path / 'out', '--data', data,
                             '--budget-s', 1))
    assert str(pairs) in line
    assert ('truncated' if damage == 'truncated' else 'has no frame_a') in line
    assert not (tmp_path / 'out').exists()


@pytest.mark.unit
def test_a_wheel_cut_short_is_named(tmp_path):
    wheel = fake_wheel(tmp_path, 'alpha_pkg')
    with open(wheel, 'r+b') as handle:
        handle.truncate(wheel.stat().st_size // 2)
    with pytest.raises(CheckError, match=r'alpha_pkg-1\.0-py3-none-any\.whl is not a readable'):
        plan_install(['alpha_pkg'], tmp_path)


@pytest.mark.unit
def test_a_wheel_cut_short_is_named_before_any_stage(tmp_path):
    """Where this Python lacks nothing, no wheel was read: the copy cut short passed here
    and failed on the next node."""
    (tmp_path / 'wheels').mkdir()
    wheel = fake_wheel(tmp_path / 'wheels', 'alpha_pkg')
    with open(wheel, 'r+b') as handle:
        handle.truncate(wheel.stat().st_size // 2)
    line = refused(gpu_check('--dry-run', '--out', tmp_path / 'out', '--wheelhouse',
                             tmp_path / 'wheels', '--budget-s', 1))
    assert line.startswith(f'error: {wheel} is not a readable wheel')
    assert not (tmp_path / 'out').exists()


@pytest.mark.unit
@pytest.mark.parametrize('kind', ['missing', 'file'])
def test_a_wheelhouse_that_is_not_a_folder_is_named(tmp_path, kind):
    """It was ignored where nothing needed installing, and so passed on one node and failed
    on the next."""
    wheelhouse = tmp_path / 'wheels'
    if kind == 'file':
        wheelhouse.write_text('')
    line = refused(gpu_check('--dry-run', '--out', tmp_path / 'out', '--wheelhouse', wheelhouse,
                             '--budget-s', 1))
    assert line.startswith(f'error: --wheelhouse {wheelhouse}: ')
    assert line.endswith('no such folder' if kind == 'missing' else 'is a file, not a folder')
