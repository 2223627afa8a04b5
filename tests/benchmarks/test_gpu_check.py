"""benchmarks/gpu_check.py: the dry run (every stage at tiny size on the CPU, as the real
command runs it), the refusals a CPU node and a short wheelhouse get, and the install plan."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import CheckError, plan_install

REPO = Path(__file__).resolve().parents[2]


def gpu_check(*args):
    return subprocess.run([sys.executable, 'benchmarks/gpu_check.py', *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=1500)


@pytest.fixture(scope='module')
def dry_run(video_betons, tmp_path_factory):
    root = tmp_path_factory.mktemp('gpu_check')
    data = root / 'data'
    data.mkdir()
    # the fixture's real clip, paired with tracked proposals as the GPU bundle's data is
    clip = Path(video_betons[1]).parent / 'clip.mp4'
    written = subprocess.run([sys.executable, 'writers/write_video_pairs.py', clip,
                              data / 'pairs.beton', '--gap', '2', '--proposals', '4',
                              '--workers', '1'], capture_output=True, text=True, cwd=REPO)
    assert written.returncode == 0, written.stderr[-2000:]
    result = gpu_check('--dry-run', '--out', root / 'out', '--data', data, '--budget-s', 1500)
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
    assert len(cuda) == 8
    step = report['train_step']
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


@pytest.mark.skipif(torch.cuda.is_available(), reason='this node has a GPU')
def test_without_a_gpu_the_real_check_stops_with_one_line(tmp_path):
    result = gpu_check('--out', tmp_path / 'out')
    assert result.returncode == 2
    assert result.stderr.startswith('error: no CUDA GPU is visible')
    assert len(result.stderr.strip().splitlines()) == 1


def fake_wheel(folder, name, requires=()):
    """A minimal real wheel: just the METADATA pip and the planner read."""
    path = Path(folder) / f'{name}-1.0-py3-none-any.whl'
    metadata = f'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n' + ''.join(
        f'Requires-Dist: {req}\n' for req in requires)
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr(f'{name}-1.0.dist-info/METADATA', metadata)
    return path


def test_install_plan_takes_what_this_python_lacks_and_nothing_it_has(tmp_path):
    alpha = fake_wheel(tmp_path, 'alpha_pkg', ['beta-pkg>=1', 'numpy', 'torch',
                                               'gamma_pkg; extra == "docs"'])
    beta = fake_wheel(tmp_path, 'beta_pkg', ['numpy'])
    fake_wheel(tmp_path, 'numpy')  # present here: must not be planned
    assert sorted(plan_install(['alpha-pkg'], tmp_path)) == sorted([alpha, beta])


def test_install_plan_names_the_missing_wheel(tmp_path):
    fake_wheel(tmp_path, 'alpha_pkg', ['delta-pkg'])
    with pytest.raises(CheckError, match=r'has no wheel for delta_pkg'):
        plan_install(['alpha_pkg'], tmp_path)
