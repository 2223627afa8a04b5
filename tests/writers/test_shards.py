"""writers/shards.py: ``--shard I/N``'s parsing and the split's limits (the writers' shards
and their merge: test_merge_betons.py, test_merge_images.py)."""
import os

import pytest

from fastssl_common.errors import UserError
from writers.shards import check_shard, print_shard, select_shard
from writers.video_options import video_listing
from writers.video_source import find_videos


def test_shard_digits_are_ascii_only():
    assert check_shard(' 3/8 ') == (3, 8) and check_shard((0, 1)) == (0, 1)
    for bad in ('\u0661/\u0662', '1/\uff12'):       # Arabic-Indic and full-width digits
        with pytest.raises(UserError, match=r'--shard must be I/N .*0 <= I < N, got '):
            check_shard(bad)


def test_shard_beyond_64_bits_is_refused():
    assert check_shard(f'0/{2**63 - 1}') == (0, 2**63 - 1)
    # however long: Python's int() refuses over 4300 digits with a traceback
    for bad in (f'0/{2**63}', f'{2**64}/{2**65}', '0/' + '9' * 5000):
        with pytest.raises(UserError, match=r'--shard is too large: at most 9223372036854775807'):
            check_shard(bad)
    assert check_shard('0' * 30 + '1/' + '0' * 30 + '2') == (1, 2)   # zeros in front are fine


def test_more_shards_than_videos_are_refused(tmp_path):
    for name in ('a.mp4', 'b.mp4', 'c.mkv'):
        (tmp_path / name).write_bytes(b'')            # listed by name: never opened here
    sources = find_videos(str(tmp_path))
    chosen, entry = select_shard(sources, (2, 3), str(tmp_path), 'video',
                                 video_listing(sources, str(tmp_path)))
    assert [os.path.basename(s.path) for s in chosen] == ['c.mkv'] and entry['count'] == 3
    with pytest.raises(UserError) as caught:
        select_shard(sources, (0, 3000000), str(tmp_path), 'video', [])
    assert str(caught.value) == (
        f"--shard 0/3000000 leaves shards with no video: {tmp_path} has 3 videos (video j of "
        f"SRC's sorted list is in shard j mod N); use at most 3 shards")
    with pytest.raises(UserError, match=r'--shard 3/4 holds no video: .* has 3 videos .*'
                                        r'use at most 3 shards'):
        select_shard(sources, (3, 4), str(tmp_path), 'video', [])


def test_the_summary_line_counts_the_items_found(capsys):
    print_shard(None, 'video')
    print_shard({'indices': [2], 'count': 3, 'images_found': 8}, 'image')
    print_shard({'indices': [0], 'count': 1, 'videos_found': 1}, 'video')
    assert capsys.readouterr().out.splitlines() == [
        'shard: 2/3 (2 of the 8 images found)', 'shard: 0/1 (1 of the 1 video found)']
