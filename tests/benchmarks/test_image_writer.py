"""Smoke test of benchmarks/image_writer.py: ``--quick`` prints every method's row, the ratio
lines and the repeatability lines, and writes the JSON; no speed is asserted
(a 64-image run's numbers mean nothing), but with 2 workers write_images must have written
the same bytes in every run, and the merge of its shards those bytes too. Runs in-process to
share the test session's imports."""
import json
import re

import pytest

from benchmarks.image_writer import main
from fastssl_common.errors import UserError


def test_quick_run(tmp_path, capsys):
    out = tmp_path / 'image_writer.json'
    assert main(['--quick', '--repeats', '2', '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for label in ("(i0) FFCV's DatasetWriter", '(i1) write_images', '(i2) the writer before',
                  '(i3) --shards shards', '      of which the merge'):
        rows = [line for line in lines if line.startswith(label)]
        assert len(rows) == 1 and re.search(r'\d+\.\d\s+img/s', rows[0]), label
    assert any(re.match(r'\(i1\)/\(i2\)  write_images vs the writer before: \d+\.\d\dx  '
                        r'target >= 1\.0  (PASS|MISS)$', line) for line in lines)
    assert any(re.match(r"\(i1\)/\(i0\)  write_images vs FFCV's bare writer: \d+\.\d\dx  "
                        r'\(no target\)$', line) for line in lines)
    assert any(re.match(r'\(i3\)/\(i1\)  2 shards one after another and their merge vs one '
                        r'write: \d+\.\d\dx  \(no target\)$', line) for line in lines)
    assert any(re.match(r'merge      \d+ img/s, \d+ MB/s of \.beton \(\d+\.\d MB\)$', line)
               for line in lines)
    assert "(i3)       the merged file is (i1)'s, byte for byte: yes" in lines
    assert '(i1)  the same bytes in all 2 runs: yes' in lines
    assert any(re.match(r'\(i0\)  the same bytes in all 2 runs: (yes|no \(2 different files\))$',
                        line) for line in lines)
    result = json.loads(out.read_text())
    assert set(result['speed']) == {'ffcv', 'ours', 'before', 'sharded', 'merge'}
    assert all(len(timing['per_run']) == 2 for timing in result['speed'].values())
    assert result['repeatable']['ours'] is True and result['merged_is_ours'] is True
    assert result['config']['shards'] == 2
    assert result['config']['samples'] == 64 and result['config']['workers'] == 2


@pytest.mark.parametrize('args, message', [(['--repeats', '0'], '--repeats must be at least 1'),
                                           (['--max-resolution', '-1'], 'must be >= 0'),
                                           (['--data', 'no/such'], 'is not a folder'),
                                           (['--shards', '0'], '--shards must be at least 1'),
                                           (['--quick', '--shards', '65'],
                                            '--shards 65 is more than the 64 images')])
def test_bad_options(args, message):
    with pytest.raises(UserError, match=message):
        main(args)
