"""benchmarks.gpu_check: the dry run (every stage at tiny size on the CPU, as the real
command runs it, from outside the repository over an earlier run's outputs), the refusal a
node without a GPU gets, bad input as one line, and no earlier run's file passing for this
run's."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def gpu_check(*args, cwd=REPO):
    return subprocess.run([sys.executable, '-m', 'benchmarks.gpu_check', *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=1500,
                          env={**os.environ, 'PYTHONPATH': str(REPO)})


@pytest.fixture(scope='module')
def dry_run(planted_cut_clip, module_tmp):
    root = module_tmp.mktemp('gpu_check')
    data = root / 'data'
    data.mkdir()
    # a real clip paired with tracked proposals, as the GPU bundle's data is
    clip = root / 'clip.mp4'
    planted_cut_clip.write(str(clip))
    written = subprocess.run([sys.executable, 'writers/write_video_pairs.py', clip,
                              data / 'pairs.beton', '--gap', '2', '--proposals', '4',
                              '--workers', '1'], capture_output=True, text=True, cwd=REPO)
    assert written.returncode == 0, written.stderr[-2000:]
    # from outside the repository, with relative paths, over an earlier run's outputs
    plant_stale_outputs(root / 'out')
    result = gpu_check('--dry-run', '--out', 'out', '--data', 'data', '--budget-s', 1500,
                       cwd=root)
    return result, root / 'out'


def test_dry_run_runs_every_stage_and_reports(dry_run):
    result, out = dry_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / 'gpu_check.json').read_text())
    stages = {s['stage']: s['status'] for s in report['stages']}
    assert list(stages) == ['environment', 'install', 'cuda tests', 'train step']
    assert stages['install'] == 'nothing missing' and stages['train step'] == 'done'
    cuda = {t['target']: t['verdict'] for t in report['targets']
            if t['target'].startswith('cuda test ')}
    # on the CPU the device-independent checks run, the CUDA-only ones skip with a reason
    assert cuda['cuda test test_gpu_augment_equals_the_cpu_op'] == 'PASS'
    assert cuda['cuda test test_channels_last_reaches_every_convolution'] == 'PASS'
    assert cuda['cuda test test_checkpoint_from_the_device_resumes_on_the_cpu'] == 'PASS'
    assert cuda['cuda test test_nccl_ddp_step_on_every_visible_gpu'] == 'SKIP'
    assert len(cuda) == 8       # the earlier run's test_from_an_earlier_run is not among them
    assert not (REPO / 'out').exists()      # relative paths are the caller's, not the repo's
    step = report['train_step']
    assert step['complete'] is True
    assert [row['variant'] for row in step['loaders']] == ['mocov2', 'fti', 'fti_rt']
    assert all(row['pairs_per_s'] > 0 and row['loader_only_pairs_per_s'] > 0
               for row in step['loaders'])
    # no GPU: every speed target is reported, none is judged
    speed = [t for t in report['targets'] if not t['target'].startswith('cuda test ')]
    assert speed and all(t['verdict'] == 'n/a' for t in speed)
    markdown = (out / 'gpu_check.md').read_text()
    assert '| train step | done |' in markdown and 'dry run' in markdown
    assert (out / 'profile.txt').read_text().count('\n') > 10
    # what the device tool brings back: a few flat files
    assert sorted(p.name for p in out.iterdir()) == [
        'cuda_tests.xml', 'gpu_check.json', 'gpu_check.log', 'gpu_check.md', 'profile.txt',
        'train_step.json']


@pytest.mark.unit
@pytest.mark.skipif(torch.cuda.is_available(), reason='this node has a GPU')
def test_without_a_gpu_the_real_check_stops_with_one_line(tmp_path):
    plant_stale_outputs(tmp_path / 'out')
    result = gpu_check('--out', tmp_path / 'out')
    assert result.returncode == 2
    assert result.stderr.startswith('error: no CUDA GPU is visible')
    assert len(result.stderr.strip().splitlines()) == 1
    # nothing of the earlier run is left to pass for this one's
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['gpu_check.log']


# ---------------------------------------------------------------------------- bad input
# Refused before the environment stage (no torch import): each run takes well under a second.

def refused(result):
    """The one-line usage refusal: exit 2, one ``error:`` line, no usage text or traceback."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    return lines[0]


@pytest.mark.unit
@pytest.mark.parametrize('args, names', [
    (['--budget-s', 'nan'], '--budget-s nan'),
    (['--budget-s', 'inf'], '--budget-s inf'),
    (['--budget-s', '0'], '--budget-s 0'),
    (['--budget-s', 'abc'], '--budget-s'),
    (['--bogus'], '--bogus'),
    (['--data', ''], '--data'),
])
def test_bad_option_is_one_error_line(tmp_path, args, names):
    line = refused(gpu_check('--dry-run', '--out', tmp_path / 'out', *args))
    assert names in line
    assert not (tmp_path / 'out').exists()


@pytest.mark.unit
@pytest.mark.parametrize('out', [[], ['--out', '']])
def test_missing_out_is_one_error_line(tmp_path, out):
    # an empty --out would be the current folder, whose earlier report a run removes
    (tmp_path / 'gpu_check.json').write_text('{}')
    result = subprocess.run([sys.executable, '-m', 'benchmarks.gpu_check', '--dry-run', *out],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert '--out' in refused(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['gpu_check.json']


@pytest.mark.unit
@pytest.mark.parametrize('where', ['file', 'unwritable'])
def test_out_that_cannot_be_a_folder_is_one_error_line(tmp_path, where):
    out = tmp_path / 'taken' if where == 'file' else Path('/proc/fastssl_gpu_check')
    if where == 'file':
        out.write_text('mine')
    line = refused(gpu_check('--dry-run', '--out', out))
    assert line.startswith(f'error: --out {out}')
    if where == 'file':
        assert out.read_text() == 'mine'


@pytest.mark.unit
@pytest.mark.parametrize('data', ['missing', 'empty'])
def test_explicit_data_without_pairs_beton_is_refused(tmp_path, data):
    folder = tmp_path / 'data'
    if data == 'empty':
        folder.mkdir()
    line = refused(gpu_check('--dry-run', '--out', tmp_path / 'out', '--data', folder))
    assert line.startswith(f'error: --data {folder}')
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------------------- stale outputs

PASSING_XML = ('<testsuites><testsuite name="pytest" tests="1">'
               '<testcase classname="tests.test_cuda" name="test_from_an_earlier_run"/>'
               '</testsuite></testsuites>')


def plant_stale_outputs(out):
    """An earlier run's outputs, all of them saying it passed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / 'cuda_tests.xml').write_text(PASSING_XML)
    for name in ('train_step.json', 'gpu_check.json'):
        (out / name).write_text(json.dumps({'stale': True}))
    for name in ('profile.txt', 'gpu_check.md'):
        (out / name).write_text('stale\n')


@pytest.mark.unit
def test_skipped_stages_leave_no_earlier_outputs(tmp_path):
    out = tmp_path / 'out'
    plant_stale_outputs(out)
    # too little budget for either stage: both skip, and nothing of the earlier run remains;
    # a check that checked nothing is no pass
    result = gpu_check('--dry-run', '--out', out, '--budget-s', 1)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == ('incomplete: cuda tests and train step skipped '
                                              'for the budget (raise --budget-s)')
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['train_step'] is None and report['targets'] == []
    assert sorted(p.name for p in out.iterdir()) == ['gpu_check.json', 'gpu_check.log',
                                                     'gpu_check.md']


@pytest.mark.unit
@pytest.mark.parametrize('xml, code, why', [
    (None, 'timeout', 'pytest ended with timeout before reporting'),
    (None, 3, 'pytest ended with 3 before reporting'),
    ('<testsuites><testsuite name="pyt', 0, 'leaving unreadable XML'),
    ('<testsuites><testsuite name="pytest" tests="0"/></testsuites>', 5, 'reported no test'),
])
def test_cuda_tests_that_give_no_results_fail(tmp_path, xml, code, why):
    from benchmarks.gpu_check import cuda_test_rows

    path = tmp_path / 'cuda_tests.xml'
    if xml is not None:
        path.write_text(xml)
    [row] = cuda_test_rows(path, code)
    assert row['status'] == 'FAIL' and why in row['detail'], row


@pytest.mark.unit
def test_cuda_tests_that_pass_but_end_badly_fail(tmp_path):
    from benchmarks.gpu_check import cuda_test_rows

    path = tmp_path / 'cuda_tests.xml'
    path.write_text(PASSING_XML)
    assert [r['status'] for r in cuda_test_rows(path, 0)] == ['PASS']
    assert [r['status'] for r in cuda_test_rows(path, 'timeout')] == ['PASS', 'FAIL']
