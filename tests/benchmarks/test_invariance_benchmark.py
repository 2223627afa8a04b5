"""Smoke test of benchmarks/invariance.py: ``--quick`` times every size, checks the per-set
loop agrees, prints the table and writes the JSON. No timing is asserted."""
import json

from benchmarks.invariance import main


def test_quick_run(tmp_path, capsys):
    out = tmp_path / 'invariance.json'
    assert main(['--quick', '--json', str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith('machine: ') for line in printed)
    assert sum(line.split()[:2] in (['2000', '64'], ['4000', '128']) for line in printed) == 2
    assert any('per-set loop at 2000x64' in line and 'scores agree: True' in line
               for line in printed)
    doc = json.loads(out.read_text())
    assert [(r['images'], r['neurons']) for r in doc['results']] == [(2000, 64), (4000, 128)]
    assert doc['reference']['scores_agree'] and doc['reference']['speedup'] > 0
    assert doc['command'].startswith('python -m benchmarks.invariance --quick')
