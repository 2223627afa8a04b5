"""Smoke test of benchmarks/loader.py: ``--quick`` runs every method and prints every ratio.

Runs the script in a subprocess (as a user would) and checks the report's shape and the JSON
file; no timing is asserted, the numbers of a 64-sample run mean nothing.
"""
import json
import os
import re
import subprocess
import sys

from benchmarks.dali_baseline import dali_missing

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METHOD_ROWS = [
    '(a) fastssl pair loader, crop+flip (decode once)',
    '(b) fastssl pair loader, full MoCo v2 CPU augment',
    '(c) stock FFCV, two pipelines (decode twice)',
    '(d) stock FFCV, one view',
    '(e) torchvision DataLoader, crop+flip',
    '(e) torchvision DataLoader, full MoCo v2 augment',
    '(f) decode only: FFCV imdecode, full size, no crop',
]
RATIO_ROWS = [('(a)/(c)', '1.50'), ('(a)/(d)', '0.80'), ('(a)/(e crop)', '3.00'),
              ('(b)/(e full)', '5.00'), ('(a)/(f)', '0.65'), ('(b)/(f)', '0.45')]
PROFILE_ROWS = ['draw 2 crop boxes', 'JPEG decode as (a) does', 'antialiased resize + flip, view 0',
                'antialiased resize + flip, view 1', 'photometric augment, view 0',
                'photometric augment, view 1', 'collation / copy',
                'loader overhead (a)', 'JPEG decode at full size',
                'decoded-pixel fraction of (a)', 'resize quality: PSNR']
NUMBER = r'\d+(?:\.\d+)?'


def test_quick_run_prints_every_method_and_ratio(tmp_path):
    out = tmp_path / 'result.json'
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.loader', '--quick', '--json',
                           str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()

    assert any(line.startswith('machine: ') for line in lines)
    assert any(line.startswith('versions: ') and 'ffcv' in line for line in lines)
    for label in METHOD_ROWS:
        rows = [line for line in lines if line.startswith(label + ' ')]
        assert len(rows) == 1, (label, proc.stdout)
        unit = 'images/s' if label.startswith(('(d)', '(f)')) else 'pairs/s'
        assert re.search(rf'\s{NUMBER}\s+{re.escape(unit)}\s', rows[0]), rows[0]
    for name, target in RATIO_ROWS:
        rows = [line for line in lines if line.startswith(name + ' ')]
        assert len(rows) == 1, (name, proc.stdout)
        assert re.search(rf'{NUMBER}x\s+target >= {re.escape(target)}\s+(PASS|MISS)$',
                         rows[0]), rows[0]

    for start in PROFILE_ROWS:
        assert sum(line.startswith(start) for line in lines) == 1, (start, proc.stdout)

    result = json.loads(out.read_text())
    # (g) runs only where DALI is installed (make benchmark-deps)
    dali = set() if dali_missing() else {'g_crop', 'g_full'}
    assert set(result['methods']) == {'a', 'b', 'c', 'd', 'e_crop', 'e_full', 'f'} | dali
    for method in result['methods'].values():
        assert len(method['per_epoch']) == 1 and method['median'] > 0
    assert [r['ratio'] for r in result['ratios']] == ['a/c', 'a/d', 'a/e_crop', 'b/e_full',
                                                      'a/f', 'b/f'] + (
        ['a/g_crop', 'b/g_full'] if dali else [])
    profile = result['profile']
    assert profile['samples'] == 32 and 0 < profile['decoded_pixel_fraction'] <= 1
    assert profile['ms_per_pair']['decode_full'] > 0 and profile['loader_ms']['f']['cpu'] > 0
    assert result['config']['quick'] is True and result['config']['samples'] == 64
    # the batch split replayed at 2, 8 and 16 threads for (a), (b), (f), three schedules each
    assert any(line.startswith('batch split among threads') for line in lines)
    split = profile['batch_split']
    assert set(split) == {'(a)', '(b)', '(f)'}
    for by_threads in split.values():
        assert set(by_threads) == {'2', '8', '16'}
        for row in by_threads.values():
            assert set(row) == {'fixed split', 'shared', 'costliest first'}
            assert all(ratio >= 1.0 for ratio, _ in row.values())

