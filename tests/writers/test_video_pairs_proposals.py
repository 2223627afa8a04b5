"""``write_video_pairs.py --proposals N``: tracked regions stored with the pairs (exact round
trip through FFCV against an independent re-run of proposals + tracker, units in stored
pixels checked against the planted object's true boxes), pairs without tracks, the
foreground share of the kept tracks, bad input, and the inspection tool."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
from fastssl_common.errors import UserError
from fastssl_common.formats import FRAME_A
from writers.boxes import box_iou, clip_boxes, scale_boxes
from writers.inspect_pairs import PairsFile, inspect_pairs
from writers.inspect_pairs import main as inspect_main
from writers.proposals import dense_flow, propose, settings_for
from writers.region_pairs import (
    FOREGROUND_WARMUP,
    PairRegions,
    RegionSettings,
    foreground_cover,
    stats_summary,
)
from writers.tracking import track
from writers.video_source import VideoReader
from writers.write_video_pairs import main, write_video_pairs

GAP, COUNT, N = 6, 20, 6
PROPOSAL_FIELDS = {'proposals': 'array', 'num_proposals': 'int', 'index_a': 'int',
                   'index_b': 'int'}


@pytest.fixture(scope='module')
def sequence(module_tmp):
    """A GOT-10k style folder (320 x 240 JPEG frames) of the cat patch moving and growing over
    the coffee photo, and the patch's true boxes."""
    root = module_tmp.mktemp('tracked')
    frames, truth = moving_patch_sequence(COUNT, velocity=(3.0, 1.5), scale_rate=1.01)
    folder = write_sequence(root / 'src' / 'GOT-10k_Train_000001', frames, boxes=False)
    return root, folder, truth


@pytest.fixture(scope='module')
def written(sequence):
    root, folder, truth = sequence
    out = str(root / 'tracked.beton')
    summary = write_video_pairs(str(root / 'src'), out, gap=GAP, proposals=N, max_proposals=8,
                                max_resolution=160, track_resolution=320, workers=1,
                                progress=False)
    return out, summary


@pytest.fixture(scope='module')
def stored(written, load_all):
    """The written file's proposal fields, read back with the real FFCV Loader."""
    return load_all(written[0], PROPOSAL_FIELDS)


def expected_rows(folder, index_a, index_b, stored, ranking='motion'):
    """Proposals + tracker re-run through the library on the frames read independently,
    scaled to the stored frame: what the writer must have stored for the pair (the motion
    ranking's flow is from the pair's first frame to the next)."""
    with VideoReader(folder) as reader:
        frames = [f.thumbnail(320) for f in reader.decoded_frames()
                  if index_a <= f.index <= index_b]
    height, width = frames[0].shape[:2]
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = dense_flow(gray[0], gray[1]) if ranking == 'motion' else None
    start, _ = propose(frames[0], settings_for(ranking, N), flow=flow)
    boxes, alive, confidence, _ = track(gray, start)
    sx, sy = stored[1] / width, stored[0] / height
    rows = np.concatenate([scale_boxes(start, sx, sy),
                           scale_boxes(clip_boxes(boxes, width, height), sx, sy),
                           confidence[:, None]], 1)[alive]
    return rows[np.argsort(-rows[:, 8], kind='stable')].astype(np.float32)


def test_rows_round_trip_exactly_in_stored_pixels(sequence, written, stored):
    _, folder, truth = sequence
    out, summary = written
    got = stored
    pairs = list(zip(got['index_a'].ravel(), got['index_b'].ravel()))
    assert pairs == [(0, 6), (6, 12), (12, 18)]
    counts = got['num_proposals'].ravel()
    assert np.all(counts > 0) and np.all(counts <= N)
    for sample, (a, b), count in zip(got['proposals'], pairs, counts):
        rows = sample[:count]
        assert not sample[count:].any()                       # rows beyond are zeros
        np.testing.assert_array_equal(rows, expected_rows(folder, a, b, (120, 160)))
        assert np.all((rows[:, 8] > 0) & (rows[:, 8] <= 1)) and np.all(np.diff(rows[:, 8]) <= 0)
        for box in (rows[:, 0:4], rows[:, 4:8]):               # inside the 160 x 120 frame
            assert np.all((box[:, :2] >= 0) & (box[:, 2:] <= [160, 120]))
            assert np.all(box[:, 2:] - box[:, :2] >= 2)
        # the planted cat, in stored pixels (the frames were halved): found and followed (a
        # motion blob's box can be loose by the flow's spill: half the stored scale would
        # give an IoU near 0.25, twice it 0)
        best = np.argmax(box_iou(truth[a] / 2, rows[:, 0:4])[0])
        assert box_iou(truth[a] / 2, rows[best:best + 1, 0:4])[0, 0] >= 0.5
        assert box_iou(truth[b] / 2, rows[best:best + 1, 4:8])[0, 0] >= 0.5

    tracks = summary['tracks']
    assert tracks['tracks_kept'] == counts.sum() and tracks['pairs_with_tracks'] == 3
    assert tracks['proposals'] == tracks['tracks_kept'] + sum(tracks['lost'].values())
    assert tracks['mean_kept_track_frames'] == GAP
    sidecar = json.loads(Path(out + '.json').read_text())
    assert sidecar['proposals']['status'] == 'tracked'
    assert sidecar['proposals']['tracks'] == tracks
    assert sidecar['proposals']['ranking'] == 'motion'
    assert sidecar['options']['proposals'] == N
    assert sidecar['options']['proposal_ranking'] == 'motion'
    # only the pair starting at 12 comes after the background subtractor's warm-up
    foreground = tracks['foreground']
    assert foreground['tracks_judged'] == counts[2] and FOREGROUND_WARMUP == 10
    assert foreground['share'] == foreground['tracks_on_foreground'] / counts[2]


def test_contrast_ranking_round_trips_too(sequence, tmp_path, load_all):
    _, folder, _ = sequence
    out = str(tmp_path / 'contrast.beton')
    write_video_pairs(folder, out, gap=GAP, proposals=N, max_proposals=8, max_resolution=160,
                      workers=1, progress=False, proposal_ranking='contrast')
    got = load_all(out, PROPOSAL_FIELDS)
    pairs = list(zip(got['index_a'].ravel(), got['index_b'].ravel()))
    for sample, (a, b), count in zip(got['proposals'], pairs, got['num_proposals'].ravel()):
        np.testing.assert_array_equal(sample[:count],
                                      expected_rows(folder, a, b, (120, 160), 'contrast'))
    assert json.loads(Path(out + '.json').read_text())['proposals']['method'].startswith(
        'selective search (OpenCV ximgproc, fast mode)')


def test_foreground_cover_against_a_known_mask():
    mask_a = np.zeros((20, 40), bool)
    mask_a[5:15, 10:20] = True                                # 100 px
    mask_b = np.roll(mask_a, 10, axis=1)                      # moved 10 px right
    boxes_a = np.array([[10, 5, 20, 15], [0, 0, 40, 20], [30, 0, 40, 20], [-10, 5, 20, 15]])
    boxes_b = boxes_a + [10, 0, 10, 0]
    # whole; 100 + 100 of 800 + 600 (box b cut to the frame); none; box a cut to 20 x 10
    # (100 of 200) and box b 30 x 10 (100 of 300)
    np.testing.assert_allclose(foreground_cover(boxes_a, mask_a, boxes_b, mask_b),
                               [1, 200 / 1400, 0, 200 / 500])


def test_motion_ranking_tracks_the_moving_foreground():
    # a still camera: the cat walks over the coffee photo, a more colourful rocket stands
    # still; with the motion ranking the tracks that touch the walker (MOG2's foreground)
    # make a larger share of the kept ones than with colour contrast
    from benchmarks.synthetic_video import PATCHES, real_patch

    frames, _ = moving_patch_sequence(24, patch='cat', background='coffee',
                                      patch_size=(48, 48), start=(20.0, 120.0),
                                      velocity=(3.0, 1.0))
    name, crop = PATCHES['rocket']
    still = real_patch(name, crop, (64, 64))
    shares = {}
    for ranking in ('contrast', 'motion'):
        regions = PairRegions(RegionSettings(settings_for(ranking, 3)))
        for index, frame in enumerate(frames):
            frame = frame.copy()
            frame[30:94, 220:284] = still
            regions.frame(frame)
            if index % 4 == 0 and index:
                regions.finish(index - 4, (240, 320), (240, 320))
            if index % 4 == 0:
                regions.begin(index)
        foreground = stats_summary(regions.stats)['foreground']
        assert foreground['tracks_judged'] > 0
        shares[ranking] = foreground['share']
    assert shares['motion'] > shares['contrast'] and shares['motion'] >= 0.3, shares


def test_overlapping_pairs_track_as_if_alone(sequence, tmp_path, load_all):
    # --gap-range 4 8 on a grid of 4: pairs overlap, so their tracks share frames and
    # optical-flow calls; each must still get exactly what tracking it alone gives
    _, folder, _ = sequence
    out = str(tmp_path / 'overlap.beton')
    write_video_pairs(folder, out, gap_range=(4, 8), seed=1, proposals=N, max_proposals=N,
                      max_resolution=0, workers=1, progress=False)
    got = load_all(out, PROPOSAL_FIELDS)
    pairs = list(zip(got['index_a'].ravel(), got['index_b'].ravel()))
    assert any(b1 > a2 for (_, b1), (a2, _) in zip(pairs, pairs[1:])), pairs   # overlaps
    for sample, (a, b), count in zip(got['proposals'], pairs, got['num_proposals'].ravel()):
        np.testing.assert_array_equal(sample[:count], expected_rows(folder, a, b, (240, 320)))


def test_inspect_pairs(written, stored, tmp_path, small_beton, capsys,
                       run_script, assert_one_line_error):
    out, summary = written
    assert inspect_main([out, '--out', str(tmp_path / 'look'), '--pairs', '2',
                         '--per-sheet', '1']) == 0
    printed = capsys.readouterr().out
    assert 'sheets: ' in printed
    got = stored
    report = json.loads(Path(tmp_path / 'look' / 'summary.json').read_text())
    assert report['proposal_ranking'] == 'motion'
    assert report['foreground'] == summary['tracks']['foreground']
    assert f"kept tracks on moving foreground: {100 * report['foreground']['share']:.1f}% of " \
        f"{report['foreground']['tracks_judged']} judged (ranking: motion)" in printed
    counts = got['num_proposals'].ravel()
    assert report['pairs'] == 3 and report['tracks'] == int(counts.sum())
    assert report['tracks_per_pair'] == {str(c): int(n) for c, n in
                                         zip(*np.unique(counts, return_counts=True))}
    assert report['gap'] == {str(GAP): 3} and len(report['shown']) == 2
    widths = np.concatenate([p[:c, 2] - p[:c, 0] for p, c in zip(got['proposals'], counts)])
    assert report['box_sizes']['a']['width']['median'] == pytest.approx(np.median(widths),
                                                                         abs=1e-3)
    assert sorted(os.listdir(tmp_path / 'look')) == ['sheet_00.png', 'sheet_01.png',
                                                      'summary.json']
    sheet = cv2.imread(str(tmp_path / 'look' / 'sheet_00.png'))
    assert sheet.shape[0] > 180 and sheet.shape[1] > 2 * 240   # two 180 px high frames
    # a second run into the same folder leaves none of the first run's sheets
    inspect_pairs(out, str(tmp_path / 'look'), pairs=2, per_sheet=2, image_format='jpg')
    assert sorted(os.listdir(tmp_path / 'look')) == ['sheet_00.jpg', 'summary.json']
    with pytest.raises(UserError, match='--seed must be a whole number >= 0'):
        inspect_pairs(out, str(tmp_path / 'look'), seed=-1)

    junk = tmp_path / 'junk.beton'
    junk.write_bytes(b'\0' * 64)
    for path, message in ((small_beton, 'is not a pairs .beton'),
                          (junk, 'is not a readable .beton file'),
                          (tmp_path / 'none.beton', 'does not exist')):
        with pytest.raises(UserError, match=message):
            inspect_pairs(str(path), str(tmp_path / 'x'))
    assert_one_line_error(run_script('writers/inspect_pairs.py', tmp_path / 'none.beton',
                                     '--out', tmp_path / 'x'), 'none.beton', 'does not exist')
    assert not os.path.exists(tmp_path / 'x')


@pytest.mark.parametrize('sidecar', [
    [1], {'proposals': {'tracks': {'foreground': 3}}},
    {'proposals': {'tracks': {'foreground': {'share': 'x', 'tracks_judged': 4}}}},
    {'proposals': {'tracks': {'foreground': {'tracks_judged': 4}}}},
])
def test_inspect_pairs_names_an_edited_sidecar_and_writes_nothing(written, tmp_path, sidecar):
    out = tmp_path / 'pairs.beton'
    shutil.copy(written[0], out)
    written_sidecar = json.loads(Path(f'{written[0]}.json').read_text())
    edited = sidecar if not isinstance(sidecar, dict) else {**written_sidecar, **sidecar}
    Path(f'{out}.json').write_text(json.dumps(edited))
    # not the writers' shape at all: named too, not taken for a sidecar that says nothing
    needle = 'is no JSON object' if sidecar == [1] else "invalid 'proposals.tracks.foreground'"
    with pytest.raises(UserError, match=needle):
        inspect_pairs(out, tmp_path / 'look', pairs=1)
    assert not (tmp_path / 'look').exists()


def test_inspect_pairs_names_a_damaged_frame_and_leaves_no_folder(written, tmp_path):
    damaged = tmp_path / 'pairs.beton'
    shutil.copy(written[0], damaged)
    meta = PairsFile(str(damaged)).column[FRAME_A][0]
    with open(damaged, 'r+b') as handle:       # the first frame's JPEG bytes zeroed in place
        handle.seek(int(meta['data_ptr']))
        handle.write(b'\0' * 64)
    with pytest.raises(UserError, match=f'{damaged}: sample 0 {FRAME_A} is not a readable'):
        inspect_pairs(damaged, tmp_path / 'new' / 'look', pairs=3)
    assert os.listdir(tmp_path) == ['pairs.beton']     # no empty --out folders, no staging


def test_pairs_without_tracks_are_kept_and_counted(tmp_path, load_all, encode_clip):
    # a uniform clip (no proposal survives) and a clip whose every frame is another scene
    # (with cut detection off, every track fails at the first step)
    uniform = [np.full((96, 128, 3), 100, np.uint8)] * 8
    cat = moving_patch_sequence(1, frame_size=(128, 96), start=(20.0, 10.0),
                                patch_size=(48, 48))[0][0]
    flicker = [cat if i % 2 == 0 else np.ascontiguousarray(cat[::-1, ::-1]) for i in range(8)]
    src = tmp_path / 'src'
    src.mkdir()
    encode_clip(src / 'a_uniform.mp4', uniform, options={'crf': '12'})
    encode_clip(src / 'b_flicker.mp4', flicker, options={'crf': '12'})
    out = tmp_path / 'o.beton'
    summary = write_video_pairs(str(src), str(out), gap=2, cut_threshold=1.0, proposals=4,
                                workers=1, progress=False)
    got = load_all(str(out), {'num_proposals': 'int', 'proposals': 'array'})
    assert summary['counts']['pairs_written'] == 6 and not got['num_proposals'].any()
    assert not got['proposals'].any()
    tracks = summary['tracks']
    assert tracks['pairs_without_tracks'] == 6 and tracks['tracks_kept'] == 0
    assert tracks['proposals'] > 0                           # the flicker clip had some
    assert set(tracks['lost']) <= {'unreliable', 'fb_error', 'scale_jump'}
    assert sum(tracks['lost'].values()) == tracks['proposals']

    with pytest.raises(UserError, match='no tracked region survived.*--strict'):
        write_video_pairs(str(src), str(tmp_path / 's.beton'), gap=2, cut_threshold=1.0,
                          proposals=4, workers=1, progress=False, strict=True)
    assert sorted(os.listdir(tmp_path)) == ['o.beton', 'o.beton.json', 'src']


def test_cli_summary_and_bad_inputs(sequence, tmp_path, capsys, run_script, assert_one_line_error):
    root, folder, _ = sequence
    out = tmp_path / 'p.beton'
    assert main([folder, str(out), '--gap', '9', '--proposals', '3', '--workers', '1',
                 '--max-resolution', '96']) == 0
    printed = capsys.readouterr().out
    for line in ('pairs written: 2', 'region proposals tracked: ', 'pairs with tracked regions: ',
                 'mean track length: '):
        assert line in printed

    bad = tmp_path / 'bad' / 'p.beton'
    for args, message in (
            (['--gap', '4', '--proposals', '9', '--max-proposals', '8'],
             '--proposals must be a whole number from 0 to --max-proposals (8)'),
            (['--gap', '4', '--proposals', '2', '--max-proposals', '0'], '--proposals'),
            (['--gap', '4', '--detector', str(tmp_path)], '--detector needs --proposals'),
            (['--gap', '4', '--proposals', '2', '--track-resolution', '8'],
             '--track-resolution'),
            (['--gap', '4', '--track-resolution', '64'], '--track-resolution needs --proposals'),
            (['--gap', '4', '--proposals', '2', '--detector-arch', 'ssd300_vgg16'],
             '--detector-arch needs --detector'),
            (['--gap', '4', '--proposals', '2', '--detector-min-score', '0.1'],
             '--detector-min-score needs --detector'),
            (['--gap', '40', '--proposals', '2'], 'too short for a gap of 40')):
        with pytest.raises(UserError, match=re.escape(message)):
            main([folder, str(bad), *args])
    fake = tmp_path / 'fasterrcnn_resnet50_fpn_fake.pth'
    fake.write_bytes(b'PK not really')
    with pytest.raises(UserError, match=f'detector {re.escape(str(fake))} is not a torch'):
        main([folder, str(bad), '--gap', '4', '--proposals', '2', '--detector', str(fake)])
    assert_one_line_error(run_script('writers/write_video_pairs.py', folder, bad, '--gap', '4',
                                     '--proposals', '2', '--detector', tmp_path / 'no.pth'),
                          'no.pth', 'does not exist')
    assert not os.path.exists(bad.parent)


LOAD_THEN_FORK = """
import json, multiprocessing
from writers import tracking
from writers.region_pairs import load_compiled_code

def loaded():
    return [len(tracking._grid_points.signatures), len(tracking._moved_boxes.signatures)]

if __name__ == '__main__':
    before = loaded()
    load_compiled_code()
    with multiprocessing.get_context('fork').Pool(1) as pool:
        print(json.dumps([before, loaded(), pool.apply(loaded)]))
"""


def test_compiled_tracker_code_is_loaded_before_the_pool_forks(tmp_path):
    """In a fresh process, :func:`load_compiled_code` loads the tracker's compiled step, and
    a worker forked after it finds the step loaded (it does not start Numba again)."""
    script = tmp_path / 'load_then_fork.py'
    script.write_text(LOAD_THEN_FORK)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            cwd=repo, env=dict(os.environ, PYTHONPATH=repo), timeout=120)
    assert result.returncode == 0, result.stderr
    before, after, in_worker = json.loads(result.stdout.splitlines()[-1])
    assert before == [0, 0] and after == in_worker and min(after) >= 1
