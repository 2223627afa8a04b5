"""Smoke test of benchmarks/invariance.py: ``--quick`` times every size (the score alone and
with each unit's bootstrap interval), checks the per-set loop agrees, prints the tables and
writes the JSON. No timing is asserted."""
import json

from benchmarks.invariance import main


def test_quick_run(tmp_path, capsys):
    out = tmp_path / 'invariance.json'
    assert main(['--quick', '--json', str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith('machine: ') for line in printed)
    # Each size twice: its times (score, + each interval) and its top-10 score with intervals.
    assert sum(line.split()[:2] in (['2000', '64'], ['4000', '128']) for line in printed) == 4
    ci_lines = [line for line in printed if line.count('[') == 2]
    assert len(ci_lines) == 2 and all(line.split()[0] in ('2000', '4000') for line in ci_lines)
    assert any('per-set loop at 2000x64' in line and 'scores agree: True' in line
               for line in printed)
    doc = json.loads(out.read_text())
    assert [(r['images'], r['neurons']) for r in doc['results']] == [(2000, 64), (4000, 128)]
    for row in doc['results']:
        assert set(row['intervals']) == {'targets', 'sets'}
        for interval in row['intervals'].values():
            assert interval['median_seconds'] > 0
            assert set(interval['ci']) == {'10', '25'}
            assert all(low <= high for low, high in interval['ci'].values())
    assert doc['reference']['scores_agree'] and doc['reference']['speedup'] > 0
    assert doc['command'].startswith('python -m benchmarks.invariance --quick')
