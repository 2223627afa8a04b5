"""benchmarks/dali_baseline.py: skipped with its reason without DALI; with DALI, a ``--quick``
run prints (a), (b), (g crop), (g full) and both ratios with PASS/MISS (no timing asserted: a
48-image run's numbers mean nothing)."""
import json
import os
import re
import subprocess
import sys

import pytest

from benchmarks import dali_baseline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUMBER = r'\d+(?:\.\d+)?'


def test_without_dali_the_methods_are_skipped_with_the_reason(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'nvidia.dali', None)    # import now raises ImportError
    assert 'nvidia-dali-cuda120' in dali_baseline.dali_missing()
    args = dali_baseline.resolve(dali_baseline.build_parser().parse_args(['--quick']))
    assert dali_baseline.dali_methods([('x.jpg', 0)] * 32, args) == []
    out = capsys.readouterr().out
    assert out.startswith('skipping (g): NVIDIA DALI is not importable (')


def test_quick_run_prints_every_method_and_ratio(tmp_path):
    missing = dali_baseline.dali_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / 'dali.json'
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.dali_baseline', '--quick',
                           '--json', str(out)], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    labels = [label for _, label, _ in dali_baseline.FASTSSL_METHODS + dali_baseline.DALI_METHODS]
    for label in labels:
        rows = [line for line in lines if line.startswith(label + ' ')]
        assert len(rows) == 1 and re.search(rf'\s{NUMBER}\s+pairs/s\s', rows[0]), proc.stdout
    for name, target in (('(a)/(g crop)', '3.0'), ('(b)/(g full)', '10.0')):
        rows = [line for line in lines if line.startswith(name + ' ')]
        assert len(rows) == 1, proc.stdout
        assert re.search(rf'{NUMBER}x\s+target >= {re.escape(target)}\s+(PASS|MISS)$', rows[0])
    result = json.loads(out.read_text())
    assert set(result['methods']) == {'a', 'b', 'g_crop', 'g_full'}
    assert [r['ratio'] for r in result['ratios']] == ['a/g_crop', 'b/g_full']
    assert result['config']['workers'] == 1 and result['config']['samples'] == 48
