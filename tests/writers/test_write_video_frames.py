"""The video frames writer: real FFCV round trips, the sidecar, skips, and one-line CLI errors.

Success paths call the library in-process (FFCV is imported once); error paths run the CLI in a
subprocess and check the exit code, the single stderr line and that nothing is left behind.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from benchmarks.synthetic_video import write_sequence
from fastssl_common.errors import UserError
from writers.video_source import read_frames
from writers.write_video_frames import main, write_video_frames


@pytest.fixture(scope='module')
def clip(module_tmp, planted_cut_clip):
    path = module_tmp.mktemp('clip') / 'planted_cut.mp4'
    planted_cut_clip.write(path)
    return str(path)


def test_round_trip_through_ffcv_loader(tmp_path, clip, planted_cut_clip, psnr, load_all):
    out = str(tmp_path / 'frames.beton')
    summary = write_video_frames(clip, out, stride=3, workers=1, progress=False)
    expected = read_frames(clip, stride=3)
    assert summary['num_samples'] == len(expected) == 20
    assert summary['frames_read'] == planted_cut_clip.frames
    got = load_all(out, {'image': 'image', 'video_id': 'int', 'frame_index': 'int', 'label': 'int'})
    np.testing.assert_array_equal(got['frame_index'].ravel(), [f.index for f in expected])
    assert set(got['video_id'].ravel()) == {0} and set(got['label'].ravel()) == {0}
    assert got['image'].shape == (20, planted_cut_clip.size[1], planted_cut_clip.size[0], 3)
    for image, frame in zip(got['image'], expected):
        assert psnr(image, frame.rgb) > 30

    sidecar = json.load(open(out + '.json'))
    assert sidecar['format'] == 'fastssl-video-frames/1'
    (video,) = sidecar['videos']
    assert video['id'] == 0 and video['source'] == os.path.abspath(clip)
    assert (video['num_samples'], video['frames_read']) == (20, planted_cut_clip.frames)
    assert sidecar['options']['stride'] == 3
    assert sorted(os.listdir(tmp_path)) == ['frames.beton', 'frames.beton.json']


def test_folder_of_videos_and_frame_folders_in_parallel(tmp_path, clip, chelsea_pan):
    src = tmp_path / 'src'
    (src / 'videos').mkdir(parents=True)
    shutil.copy(clip, src / 'videos' / 'clip.mp4')
    (src / 'videos' / 'broken.mkv').write_bytes(b'\x1aE\xdf\xa3 not really matroska')
    write_sequence(src / 'got' / 'GOT-10k_Train_000001', chelsea_pan(10))
    write_sequence(src / 'got' / 'GOT-10k_Train_000002', chelsea_pan(6), skip={3})
    outs = []
    for workers in (1, 2):
        out = str(tmp_path / f'w{workers}.beton')
        summary = write_video_frames(
            str(src),
            out,
            stride=2,
            max_frames_per_video=4,
            max_resolution=64,
            workers=workers,
            progress=False,
        )
        outs.append((out, summary))
    (out, summary), (out2, _) = outs
    # clip: 0 2 4 6; seq 1: 0 2 4 6; seq 2 (number 3 = index 2 missing): 0 4
    assert summary['num_samples'] == 10
    assert [os.path.basename(v['source']) for v in summary['videos']] == [
        'GOT-10k_Train_000001',
        'GOT-10k_Train_000002',
        'clip.mp4',
    ]
    assert [v['id'] for v in summary['videos']] == [0, 1, 2]
    assert [os.path.basename(s['path']) for s in summary['skipped']] == ['broken.mkv']
    assert '1 frame numbers missing' in summary['warnings'][0]['message']
    sidecar = json.load(open(out + '.json'))
    assert sidecar['skipped'][0]['reason'].startswith('not a readable video')
    assert sidecar['videos'][1]['missing_frames'] == 1
    assert sidecar['videos'][0]['groundtruth'].endswith('groundtruth.txt')

    from ffcv.reader import Reader

    readers = [Reader(path) for path in (out, out2)]
    meta = [r.metadata for r in readers]
    assert readers[0].field_names == ['image', 'video_id', 'frame_index', 'label']
    np.testing.assert_array_equal(meta[0]['f1'], [0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(meta[0]['f2'], [0, 2, 4, 6, 0, 4, 0, 2, 4, 6])
    np.testing.assert_array_equal(meta[0]['f3'], meta[0]['f1'])
    for name in ('f1', 'f2'):  # the same samples with 1 or 2 workers
        np.testing.assert_array_equal(meta[0][name], meta[1][name])
    assert meta[0]['f0']['width'].max() == 64
    data = [np.fromfile(path, np.uint8) for path in (out, out2)]
    sizes = [dict(zip(r.alloc_table['ptr'], r.alloc_table['size'])) for r in readers]
    for i in range(10):
        a, b = (int(m['f0'][i]['data_ptr']) for m in meta)
        np.testing.assert_array_equal(data[0][a : a + sizes[0][a]], data[1][b : b + sizes[1][b]])


def test_strict_and_nothing_readable(tmp_path, clip):
    src = tmp_path / 'src'
    src.mkdir()
    shutil.copy(clip, src / 'clip.mp4')
    (src / 'zz.webm').write_bytes(b'\x00' * 4000)
    with pytest.raises(UserError, match='zz.webm.*--strict'):
        write_video_frames(str(src), str(tmp_path / 'o.beton'), strict=True, progress=False)
    os.remove(src / 'clip.mp4')
    with pytest.raises(UserError, match='no readable video frames.*zz.webm'):
        write_video_frames(str(src), str(tmp_path / 'o.beton'), progress=False)
    assert sorted(os.listdir(tmp_path)) == ['src']


def test_cli_bad_inputs(tmp_path, run_script, assert_one_line_error):
    out = tmp_path / 'out' / 'o.beton'
    missing = tmp_path / 'missing'
    assert_one_line_error(
        run_script('writers/write_video_frames.py', missing, out), missing, 'does not exist'
    )
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no videos here')
    assert_one_line_error(
        run_script('writers/write_video_frames.py', empty, out), empty, 'no videos',
        '(it holds 1 .txt)'
    )
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video\n' * 20)
    assert_one_line_error(
        run_script('writers/write_video_frames.py', text, out), text, 'not a readable video'
    )
    assert_one_line_error(
        run_script('writers/write_video_frames.py', text, tmp_path / 'o.txt'), 'o.txt', '.beton'
    )
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    assert_one_line_error(
        run_script('writers/write_video_frames.py', text, blocker / 'o.beton'),
        blocker,
        'not a folder',
    )
    assert_one_line_error(
        run_script('writers/write_video_frames.py', text, out, '--stride', '0'), '--stride'
    )
    assert sorted(os.listdir(tmp_path)) == ['empty', 'file', 'notes.mp4']  # no out/ left


def test_main_success_summary(tmp_path, clip, capsys):
    out = tmp_path / 'o.beton'
    assert main([clip, str(out), '--max-frames-per-video', '5', '--workers', '1']) == 0
    printed = capsys.readouterr().out
    assert 'samples written: 5' in printed and 'frames read: 5' in printed
    assert out.exists() and (tmp_path / 'o.beton.json').exists()


def test_shards_split_the_sorted_videos_round_robin(tmp_path, chelsea_pan):
    src = tmp_path / 'src'
    for i in range(5):
        write_sequence(src / f'seq{i}', chelsea_pan(3))
    out = tmp_path / 's.beton'
    summary = write_video_frames(str(src), str(out), shard='1/2', workers=1, progress=False)
    assert [os.path.basename(v['source']) for v in summary['videos']] == ['seq1', 'seq3']
    sidecar = json.load(open(f'{out}.json'))
    listing = hashlib.sha256('\n'.join(f'seq{i}' for i in range(5)).encode()).hexdigest()
    assert sidecar['shard'] == summary['shard'] == {
        'indices': [1], 'count': 2, 'videos_found': 5, 'listing_sha256': listing,
        'split': "video j of SRC's sorted list is in shard j mod N"}
    assert 'shard' not in json.load(open(write_video_frames(
        str(src), str(tmp_path / 'all.beton'), workers=1, progress=False)['sidecar']))
    for bad in ('1', '2/2', '0/0', 'a/b', '-1/2', '1/2/3'):
        with pytest.raises(UserError, match=rf'--shard must be I/N .*0 <= I < N, got {bad!r}'):
            write_video_frames(str(src), str(tmp_path / 'x.beton'), shard=bad, progress=False)
    with pytest.raises(UserError, match=r'--shard 5/6 holds no video: .* has 5 .*at most 5'):
        write_video_frames(str(src), str(tmp_path / 'x.beton'), shard=(5, 6), progress=False)
    assert sorted(os.listdir(tmp_path)) == ['all.beton', 'all.beton.json', 's.beton',
                                            's.beton.json', 'src']


def test_cli_shard_summary_and_errors(tmp_path, clip, capsys, run_script,
                                      assert_one_line_error):
    assert main([clip, str(tmp_path / 'o.beton'), '--shard', '0/1', '--workers', '1']) == 0
    assert 'shard: 0/1 (1 of the 1 video found)' in capsys.readouterr().out
    out = tmp_path / 'none.beton'
    assert_one_line_error(run_script('writers/write_video_frames.py', clip, out, '--shard',
                                     '1/2'), '--shard 1/2 holds no video')
    assert_one_line_error(run_script('writers/write_video_frames.py', clip, out, '--shard',
                                     '3/2'), '--shard must be I/N', "'3/2'")
    assert not out.exists()


def test_a_skipped_video_whose_name_holds_a_line_break_is_listed_on_one_line(tmp_path, clip,
                                                                             capsys):
    """The summary's list printed the name as it is: one entry over two lines, where the
    error line shows the break as \\n."""
    src = tmp_path / 'src'
    src.mkdir()
    shutil.copy(clip, src / 'good.mp4')
    (src / 'two\nlines.mp4').write_text('not a video')
    assert main([str(src), str(tmp_path / 'o.beton'), '--workers', '1',
                 '--max-frames-per-video', '2']) == 0
    listed = capsys.readouterr().err.splitlines()
    entry = listed.index('skipped 1 videos:') + 1
    assert listed[entry].startswith(f'  {src}/two\\nlines.mp4: ')
