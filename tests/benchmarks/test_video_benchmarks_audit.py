"""The video benchmarks (``video``, ``proposals``, ``tracking``) over user videos the writers
cannot use, and their option checks: each is one clear line naming the video as given, or a
note, never a traceback or a run lost after its timed part. In-process, on clips of a few
frames encoded here."""
import json
import os

import numpy as np
import pytest

from benchmarks import proposals, tracking, video
from benchmarks.data import link_videos
from fastssl_common.errors import UserError

pytestmark = pytest.mark.unit


@pytest.fixture(scope='module')
def clips(module_tmp, encode_clip, chelsea_pan):
    """``{frames: path}``: panning clips of 1, 3 and 40 frames, 96 x 64; ``'tiny'``: 40
    frames of 8 x 8 px, too small for the writers."""
    frames, folder = chelsea_pan(40), module_tmp.mktemp('clips')
    paths = {count: encode_clip(folder / f'pan{count}.mp4', frames[:count])
             for count in (1, 3, 40)}
    paths['tiny'] = encode_clip(folder / 'tiny.mp4', [f[:8, :8] for f in frames])
    return paths


def resolved(module, *args):
    return module.resolve(module.build_parser().parse_args(['--quick', *args]))


def test_video_times_the_longest_video_the_writers_read(clips, tmp_path):
    # (w5) and (w6) took the video whose header promised most frames: one the writers skip
    # (here the first of two of 40 frames, too small) ended the run at (w5)'s warm-up
    args = resolved(video, '--videos', clips['tiny'], clips[40])
    runs, summaries, decoded = video.build_writer_runs(
        link_videos(args.videos, tmp_path / 'videos'), args.videos, args, str(tmp_path))[:3]
    video.time_writers(runs, 1,
                       lambda: video.decode_what_the_writers_read(summaries, args.videos, decoded))
    assert {r.key: r.frames for r in runs if r.key in ('w4', 'w5', 'w6')} == \
        {'w4': [32], 'w5': [32], 'w6': [32]}
    # the plain decoding's timed runs leave out the video the writers skipped, as they do
    assert {r.key: r.frames for r in runs if r.key in ('p1', 'p2')} == {'p1': [32], 'p2': [32]}


@pytest.mark.parametrize('module', (video, proposals, tracking))
def test_writer_errors_name_the_video_as_given_not_its_temporary_link(clips, capsys, module):
    with pytest.raises(UserError) as error:
        module.main(['--quick', '--videos', clips[3]])
    assert str(error.value) == (f'no frame pairs in --videos: {clips[3]}: only 3 frames, too '
                                'short for a gap of 4')


def test_tracking_stages_skip_a_video_of_one_frame(clips):
    # a one-frame first video raised StatisticsError (no tracking step to time)
    assert tracking.stage_timings([clips[1], clips[40]], 8, 9)['video'] == 'pan40.mp4'
    with pytest.raises(UserError, match='^--videos: no video has the two frames a tracking '
                                        'step needs$'):
        tracking.stage_timings([clips[1]], 8, 9)


def test_proposals_leaves_a_skipped_video_out_of_its_per_video_runs(clips, capsys, tmp_path):
    # its run alone failed after the timed runs, naming a temporary link; the tables and the
    # JSON named it as written
    out = tmp_path / 'p.json'
    assert proposals.main(['--quick', '--videos', clips[40], clips[3], '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f'note: the writer skipped {clips[3]}: only 3 frames, too short for a gap of 4' \
        in lines
    assert any(line.startswith('writing pairs: pan40.mp4; ') for line in lines)
    result = json.loads(out.read_text())
    assert result['config']['videos'] == ['pan40.mp4']
    assert result['skipped'] == {clips[3]: 'only 3 frames, too short for a gap of 4'}
    assert result['foreground_per_video'] == {}
    assert os.path.isabs(clips[3])


def test_tracking_names_a_video_the_writer_skipped(clips, capsys, tmp_path):
    # the throughput line and the JSON listed it as written, and nothing said it was skipped
    out = tmp_path / 't.json'
    assert tracking.main(['--quick', '--videos', clips[40], clips[3], '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f'note: the writer skipped {clips[3]}: only 3 frames, too short for a gap of 4' \
        in lines
    assert any(line.startswith('throughput: pan40.mp4; ') for line in lines)
    result = json.loads(out.read_text())
    assert result['config']['videos'] == ['pan40.mp4']
    assert result['skipped'] == {clips[3]: 'only 3 frames, too short for a gap of 4'}


def test_proposals_gives_no_verdict_when_no_track_was_kept(tmp_path, capsys, encode_clip):
    # a blank clip: neither ranking tracks anything, and the ratio (6.5x) passed
    blank = encode_clip(tmp_path / 'blank.mp4', [np.full((96, 128, 3), 128, np.uint8)] * 40)
    out = tmp_path / 'p.json'
    assert proposals.main(['--quick', '--videos', blank, '--json', str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith('(r1)/(rb)  ') and line.endswith('no verdict')
               for line in lines), lines
    assert 'note: the contrast and the motion ranking kept no track (blank or uniform ' \
        'videos?): the ratios time writers that tracked nothing' in lines
    assert json.loads(out.read_text())['pass'] is None


def test_video_without_a_baseline_commit_says_why_and_leaves_out_wb(clips, capsys):
    args = resolved(video, '--videos', clips[40], '--baseline-commit', 'none')
    assert args.baseline_missing == '--baseline-commit none'
    assert 'note: no baseline writer: --baseline-commit none' in capsys.readouterr().out
    assert 'wb' not in [key for key, _, _ in video.writer_methods(4)]
