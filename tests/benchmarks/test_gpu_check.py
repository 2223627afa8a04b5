"""benchmarks.gpu_check: the dry run (every stage at tiny size on the CPU, as the real
command runs it) and the refusal a node without a GPU gets."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def gpu_check(*args):
    return subprocess.run([sys.executable, '-m', 'benchmarks.gpu_check', *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=1500)


@pytest.fixture(scope='module')
def dry_run(planted_cut_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp('gpu_check')
    data = root / 'data'
    data.mkdir()
    # a real clip paired with tracked proposals, as the GPU bundle's data is
    clip = root / 'clip.mp4'
    planted_cut_clip.write(str(clip))
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


@pytest.mark.skipif(torch.cuda.is_available(), reason='this node has a GPU')
def test_without_a_gpu_the_real_check_stops_with_one_line(tmp_path):
    result = gpu_check('--out', tmp_path / 'out')
    assert result.returncode == 2
    assert result.stderr.startswith('error: no CUDA GPU is visible')
    assert len(result.stderr.strip().splitlines()) == 1
