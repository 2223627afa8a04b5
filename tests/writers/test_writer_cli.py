"""The writers' command-line habits: numeric options checked against their ranges before
anything is written, progress as plain lines when the output is not a terminal, ``--help``
and output into a pipe whose reader has gone without a traceback."""
import json
import os
import subprocess
import sys

import pytest

from fastssl_common.errors import BROKEN_PIPE_EXIT, UserError
from writers.inspect_pairs import inspect_pairs
from writers.render_invariance_sets import render_sets
from writers.write_images import write_images
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs
from writers.writer_common import check_workers, default_workers

WRITERS = ('writers/write_images.py', 'writers/write_video_frames.py',
           'writers/write_video_pairs.py', 'writers/inspect_pairs.py',
           'writers/render_invariance_sets.py')


@pytest.fixture(scope='module')
def src(small_beton):
    """The photo folder the 16-photo .beton was written from."""
    return json.load(open(small_beton + '.json'))['options']['src']


@pytest.fixture(scope='module')
def clip(module_tmp, planted_cut_clip):
    path = module_tmp.mktemp('cli') / 'clip.mp4'
    planted_cut_clip.write(str(path))
    return str(path)


# ---------------------------------------------------------------------------- ranges

def refusals(src, clip, small_beton, out):
    """(call, option, value, range) for each refused number, every writer."""
    pairs = dict(gap=2, workers=1)
    return [
        (lambda: write_images(src, out, jpeg_quality=0), 'jpeg-quality', 0, 'from 1 to 100'),
        (lambda: write_images(src, out, jpeg_quality=101), 'jpeg-quality', 101,
         'from 1 to 100'),
        (lambda: write_images(src, out, max_resolution=8), 'max-resolution', 8,
         '>= 16, or 0 (no cap)'),
        (lambda: write_images(src, out, max_resolution=-1), 'max-resolution', -1, '>= 16'),
        (lambda: write_images(src, out, workers=-2), 'workers', -2, '>= 1, or 0'),
        (lambda: write_images(src, out, compress_probability=1.5), 'compress-probability',
         1.5, 'a number from 0 to 1'),
        (lambda: write_images(src, out, box_context=float('nan')), 'box-context', 'nan',
         'a number >= 0'),
        (lambda: write_images(src, out, min_box_size=-3), 'min-box-size', -3, '>= 0'),
        (lambda: write_video_frames(clip, out, stride=0), 'stride', 0, '>= 1'),
        (lambda: write_video_frames(clip, out, max_frames_per_video=-5),
         'max-frames-per-video', -5, '>= 1, or 0 (no cap)'),
        (lambda: write_video_frames(clip, out, jpeg_quality=1000), 'jpeg-quality', 1000,
         'from 1 to 100'),
        (lambda: write_video_frames(clip, out, segment_frames=-1), 'segment-frames', -1,
         '>= 1, or 0 (each video in one task)'),
        (lambda: write_video_pairs(clip, out, segment_frames=2.5, **pairs), 'segment-frames',
         2.5, '>= 1, or 0 (each video in one task)'),
        (lambda: write_video_pairs(clip, out, gap=0), 'gap', 0, '>= 1'),
        (lambda: write_video_pairs(clip, out, gap_range=(3, 2)), 'gap-range', '3 2',
         '1 <= A <= B'),
        (lambda: write_video_pairs(clip, out, gap_range=(0, 2)), 'gap-range', '0 2',
         '1 <= A <= B'),
        (lambda: write_video_pairs(clip, out, cut_threshold=1.5, **pairs), 'cut-threshold',
         1.5, 'from 0 to 1'),
        (lambda: write_video_pairs(clip, out, min_motion=300, **pairs), 'min-motion', 300,
         'from 0 to 255'),
        (lambda: write_video_pairs(clip, out, seed=-1, **pairs), 'seed', -1, '>= 0'),
        (lambda: write_video_pairs(clip, out, max_proposals=-1, **pairs), 'max-proposals', -1,
         'from 0 to 1024'),
        (lambda: write_video_pairs(clip, out, max_proposals=10**8, **pairs), 'max-proposals',
         10**8, 'from 0 to 1024'),
        (lambda: write_video_pairs(clip, out, proposals=9, max_proposals=8, **pairs),
         'proposals', 9, 'from 0 to --max-proposals (8)'),
        (lambda: write_video_pairs(clip, out, proposals=1, track_resolution=8, **pairs),
         'track-resolution', 8, '>= 32'),
        (lambda: write_video_pairs(clip, out, detector_min_score=2.0, **pairs),
         'detector-min-score', 2.0, 'from 0 to 1'),
        (lambda: inspect_pairs(small_beton, out, pairs=0), 'pairs', 0, '>= 1'),
        (lambda: inspect_pairs(small_beton, out, height=4), 'height', 4, 'from 16 to 2160'),
        (lambda: inspect_pairs(small_beton, out, height=30000), 'height', 30000,
         'from 16 to 2160'),
        (lambda: render_sets(out, size=8), 'size', 8, 'from 32 to 1024'),
        (lambda: render_sets(out, seed=-1), 'seed', -1, '>= 0'),
    ]


def test_numbers_out_of_range_are_refused_before_anything_is_written(src, clip, small_beton,
                                                                     tmp_path):
    out = str(tmp_path / 'new' / 'o.beton')
    for call, option, value, within in refusals(src, clip, small_beton, out):
        with pytest.raises(UserError) as err:
            call()
        message = str(err.value)
        assert message.startswith(f'--{option} must be ') and within in message, message
        assert message.endswith(f', got {value}'), message
        assert not (tmp_path / 'new').exists(), option


def test_numbers_beyond_64_bits_are_refused_whatever_the_range(src, clip, tmp_path):
    out = str(tmp_path / 'new' / 'o.beton')
    huge = 10**20
    for call, option, value in (
            (lambda: write_video_frames(clip, out, stride=huge), 'stride', huge),
            (lambda: write_video_pairs(clip, out, gap=huge), 'gap', huge),
            (lambda: write_images(src, out, jpeg_quality=-huge), 'jpeg-quality', -huge),
            (lambda: write_images(src, out, min_box_size=huge), 'min-box-size', huge)):
        with pytest.raises(UserError) as err:
            call()
        assert str(err.value) == \
            f'--{option} is too large: at most {2**63 - 1} in size, got {value}'
        assert not (tmp_path / 'new').exists(), option


@pytest.mark.parametrize('call, complaint', [
    (lambda src, clip, out: write_video_pairs(clip, out, gap=2, seed=3),
     '--seed needs --gap-range A B'),
    (lambda src, clip, out: write_images(src, out, compress_probability=0.3),
     '--compress-probability needs --write-mode proportion'),
    (lambda src, clip, out: write_images(src, out, box_context=0.5), '--box-context needs --boxes'),
    (lambda src, clip, out: write_images(src, out, min_box_size=8), '--min-box-size needs --boxes'),
])
def test_options_that_would_change_nothing_are_refused(src, clip, tmp_path, call, complaint):
    out = tmp_path / 'new' / 'o.beton'
    with pytest.raises(UserError, match=complaint):
        call(src, clip, str(out))
    assert not out.parent.exists()


def test_a_folder_given_for_a_file_is_named_as_a_folder(src, tmp_path):
    with pytest.raises(UserError, match=f'boxes file {tmp_path} is a folder, not a file'):
        write_images(src, str(tmp_path / 'o.beton'), boxes=str(tmp_path))
    with pytest.raises(UserError, match=f'pairs file {tmp_path} is a folder, not a file'):
        inspect_pairs(str(tmp_path), str(tmp_path / 'sheets'))


def test_a_replaced_output_is_said_so(clip, tmp_path, capsys):
    from writers.write_video_frames import main
    out = tmp_path / 'o.beton'
    for replaced in (False, True):
        assert main([clip, str(out), '--workers', '1', '--max-frames-per-video', '3']) == 0
        last = capsys.readouterr().out.splitlines()[-1]
        assert last.startswith(f'output: {out} ')
        assert last.endswith('; replaced the earlier file)') == replaced, last


def test_zero_workers_means_one_per_cpu():
    assert check_workers(0) == check_workers(None) == default_workers()
    assert check_workers(3) == 3


def test_a_refusal_on_the_command_line_is_one_line(src, tmp_path, run_script,
                                                   assert_one_line_error):
    out = tmp_path / 'new' / 'o.beton'
    result = run_script('writers/write_images.py', src, out, '--jpeg-quality', '0')
    assert_one_line_error(result, '--jpeg-quality', 'from 1 to 100', 'got 0')
    assert not out.parent.exists()


# ---------------------------------------------------------------------------- progress

def test_progress_off_a_terminal_is_plain_lines(src, clip, tmp_path, run_script):
    images = run_script('writers/write_images.py', src, tmp_path / 'i.beton',
                        '--max-resolution', '64', '--workers', '1')
    frames = run_script('writers/write_video_frames.py', clip, tmp_path / 'f.beton',
                        '--workers', '1')
    for result, stages in ((images, ('reading images', 'writing', 'hashing')),
                           (frames, ('reading videos', 'hashing'))):
        assert result.returncode == 0, result.stderr
        assert '\r' not in result.stdout + result.stderr
        assert result.stderr == ''              # standard error keeps warnings and errors
        lines = result.stdout.splitlines()
        for stage in stages:
            shown = [line for line in lines if line.startswith(f'{stage}: ')]
            assert 2 <= len(shown) <= 12, (stage, shown)
            assert f'{stage}: 100% ' in shown[-1], shown
        assert lines[-1].startswith('output: ')


# ---------------------------------------------------------------------------- pipes

@pytest.mark.parametrize('command', [*WRITERS, '-m loaders.verify'])
def test_help_into_head_has_no_traceback(command, repo):
    result = subprocess.run(f'{sys.executable} {command} --help | head -1', shell=True,
                            cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout.startswith('usage: ')
    assert 'Traceback' not in result.stderr and 'BrokenPipe' not in result.stderr


def test_output_into_a_pipe_whose_reader_has_gone_ends_quietly(src, tmp_path, repo):
    """Like a Unix tool killed by SIGPIPE: exit status 141, no traceback, nothing kept."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, 'writers/write_images.py', src, str(tmp_path / 'o.beton'),
             '--workers', '1'], stdout=write, stderr=subprocess.PIPE, text=True, cwd=repo,
            timeout=300)
    finally:
        os.close(write)
    assert result.returncode == BROKEN_PIPE_EXIT
    assert result.stderr == ''
    assert os.listdir(tmp_path) == []
