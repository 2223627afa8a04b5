"""Smoke test of benchmarks/loader.py: ``--quick`` runs every method and prints every ratio.

Runs the script in a subprocess (as a user would) and checks the report's shape and the JSON
file; no timing is asserted, the numbers of a 64-sample run mean nothing.
"""
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METHOD_ROWS = [
    '(a) fastssl pair loader, crop+flip (decode once)',
    '(b) fastssl pair loader, full MoCo v2 CPU augment',
    '(c) stock FFCV, two pipelines (decode twice)',
    '(d) stock FFCV, one view',
    '(e) torchvision DataLoader, crop+flip',
    '(e) torchvision DataLoader, full MoCo v2 augment',
]
RATIO_ROWS = [('(a)/(c)', '1.5'), ('(a)/(d)', '0.8'), ('(a)/(e crop)', '3.0'),
              ('(b)/(e full)', '5.0')]
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
        unit = 'images/s' if label.startswith('(d)') else 'pairs/s'
        assert re.search(rf'\s{NUMBER}\s+{re.escape(unit)}\s', rows[0]), rows[0]
    for name, target in RATIO_ROWS:
        rows = [line for line in lines if line.startswith(name + ' ')]
        assert len(rows) == 1, (name, proc.stdout)
        assert re.search(rf'{NUMBER}x\s+target >= {re.escape(target)}\s+(PASS|MISS)$',
                         rows[0]), rows[0]

    result = json.loads(out.read_text())
    assert set(result['methods']) == {'a', 'b', 'c', 'd', 'e_crop', 'e_full'}
    for method in result['methods'].values():
        assert len(method['per_epoch']) == 1 and method['median'] > 0
    assert [r['ratio'] for r in result['ratios']] == ['a/c', 'a/d', 'a/e_crop', 'b/e_full']
    assert result['config']['quick'] is True and result['config']['samples'] == 64
