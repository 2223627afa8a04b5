"""Which pairs a video gives: the grid of first frames, fixed gaps, and seeded gap draws that
depend on the video's path relative to SRC only, as the bytes of its name on disk."""
import json
import os
import zlib

from writers.pairing import PairSchedule, video_key


def pairs_of(schedule, frames):
    """``[(index_a, index_b)]`` as the pairs writer streams ``frames`` frames through it."""
    found = []
    for j in range(frames):
        if schedule.is_first(j):
            schedule.start(j)
        found.extend((a, j) for a in schedule.finish(j))
    return found


def test_fixed_gap_pairs_every_kth_frame():
    assert pairs_of(PairSchedule(4, 4, 4, 0, 0), 14) == [(0, 4), (4, 8), (8, 12)]


def test_gap_range_grid_draws_and_seeds():
    drawn = pairs_of(PairSchedule(3, 3, 7, seed=0, key=5), 200)
    assert all(a % 3 == 0 and 3 <= b - a <= 7 for a, b in drawn)
    assert len({b - a for a, b in drawn}) > 2
    assert {a for a, _ in drawn} >= set(range(0, 193, 3))     # every grid point whose pair fits
    assert pairs_of(PairSchedule(3, 3, 7, seed=0, key=5), 200) == drawn
    assert pairs_of(PairSchedule(3, 3, 7, seed=1, key=5), 200) != drawn
    assert pairs_of(PairSchedule(3, 3, 7, seed=0, key=6), 200) != drawn


def test_second_frame_known_before_it_arrives():
    schedule = PairSchedule(2, 3, 3, 0, 0)
    schedule.start(0)
    assert schedule.ends_a_pair(3) and not schedule.ends_a_pair(2)
    assert schedule.finish(3) == [0] and schedule.finish(3) == ()


def test_video_key_is_the_path_below_src():
    key = video_key(os.path.join('/data', 'src', 'a', 'v.mp4'), '/data/src')
    assert key == video_key(os.path.join('/elsewhere', 'a', 'v.mp4'), '/elsewhere')
    assert key != video_key(os.path.join('/data', 'src', 'b', 'v.mp4'), '/data/src')


def test_video_key_of_a_utf8_name_is_the_one_files_were_written_with():
    # the CRC-32 of the name's UTF-8 bytes, as the key was before names not in UTF-8 were
    # read: a file written then gets the same pairs again
    assert video_key('/data/src/clips/été/vidéo 1.mp4', '/data/src') == 3760750492


def test_video_key_of_a_name_not_in_utf8_is_the_crc_of_its_bytes():
    name = os.fsdecode(b'clips/bad\xffname.mp4')       # as os.listdir gives it
    assert video_key(os.path.join('/data/src', name), '/data/src') == \
        zlib.crc32(b'clips/bad\xffname.mp4')


def test_pairs_writer_reads_a_video_whose_name_is_not_utf8(tmp_path, encode_clip, chelsea_pan,
                                                           run_script):
    src = tmp_path / 'src'
    src.mkdir()
    encode_clip(str(src / 'ok.mp4'), chelsea_pan(12))
    bad = os.path.join(os.fsencode(src), b'bad\xffname.mp4')
    encode_clip(str(tmp_path / 'bad.mp4'), chelsea_pan(12, step=3))
    os.rename(tmp_path / 'bad.mp4', bad)
    out = tmp_path / 'p.beton'
    result = run_script('writers/write_video_pairs.py', src, out, '--gap-range', '2', '4',
                        '--workers', '1')
    assert result.returncode == 0, result.stderr
    # the sidecar is JSON in ASCII: the byte 0xFF is the escape \udcff (Python's
    # surrogateescape), which os.fsencode turns back into the name on disk
    text = (tmp_path / 'p.beton.json').read_bytes().decode('ascii')
    assert 'bad\\udcffname.mp4' in text
    sources = [os.fsencode(v['source']) for v in json.loads(text)['videos']]
    assert sources == [bad, os.fsencode(src / 'ok.mp4')]
