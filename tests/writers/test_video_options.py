"""writers/video_options.py: the options both video writers share (checked values, one parser),
SRC's listing that ``--shard`` hashes, the one-line error when
nothing was written, and the problem report on stderr."""
import hashlib
import json
import os

import pytest

from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError
from writers.shards import listing_digest
from writers.video_options import (
    add_common_arguments,
    common_options,
    nothing_written,
    print_problems,
    video_listing,
)
from writers.video_source import VideoSource
from writers.write_video_frames import write_video_frames
from writers.writer_common import default_workers


def test_common_options_are_checked_and_normalised():
    assert common_options(0, 90, 2, True) == dict(max_resolution=0, jpeg_quality=90, workers=2,
                                                   strict=True)
    assert common_options(320, 1, None, False)['workers'] == default_workers()
    assert common_options(320, 100, 0, False)['workers'] == default_workers()
    with pytest.raises(UserError, match=r'--jpeg-quality must be .*1 to 100, got 101'):
        common_options(512, 101, 1, False)
    with pytest.raises(UserError, match=r'--max-resolution must be .*got 8'):
        common_options(8, 90, 1, False)
    with pytest.raises(UserError, match=r'--workers must be .*got -1'):
        common_options(512, 90, -1, False)


def test_arguments_and_their_defaults():
    parser = ArgParser()
    add_common_arguments(parser)
    parser.add_argument('--gap', type=int, default=4)      # a writer's own option, after them
    args = parser.parse_args(['--gap', '2', 'clips/', 'out.beton', '--strict'])
    assert (args.src, args.out, args.gap, args.strict) == ('clips/', 'out.beton', 2, True)
    assert (args.max_resolution, args.jpeg_quality, args.workers) == (512, 90, None)
    with pytest.raises(UserError, match='OUT.beton'):
        parser.parse_args(['clips/'])


def test_nothing_written_names_the_file_or_the_first_of_many(tmp_path):
    first = {'path': 'a.mp4', 'reason': 'no video stream'}
    file = str(tmp_path / 'a.mp4')
    assert nothing_written('no frames', file, [first]) == \
        f'no frames in {file}: no video stream'
    folder = str(tmp_path)
    assert nothing_written('no pairs', folder, [first]) == \
        f'no pairs in {folder}: a.mp4: no video stream'
    many = [first, {'path': 'b.mp4', 'reason': 'too short'}]
    assert nothing_written('no pairs', folder, many) == \
        f'no pairs in {folder} (2 videos skipped; first: a.mp4: no video stream)'


def test_a_shard_with_nothing_to_write_says_so_and_what_to_do(tmp_path, encode_clip,
                                                             chelsea_pan):
    """The other shards may hold samples: the error names the shard and says to merge them."""
    first = {'path': 'a.mp4', 'reason': 'no video stream'}
    assert nothing_written('no pairs', 'clips', [first], (3, 8)) == (
        'no pairs in shard 3/8 of clips (1 video skipped; first: a.mp4: no video stream): '
        'nothing to write; merge the other shards without it')
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'a.mkv').write_bytes(b'not a video')
    encode_clip(str(src / 'b.mp4'), chelsea_pan(6))
    with pytest.raises(UserError) as caught:
        write_video_frames(str(src), str(tmp_path / 'out.beton'), shard='0/2', workers=1,
                           progress=False)
    assert str(caught.value).startswith(f'no readable video frames in shard 0/2 of {src} (1 '
                                        f'video skipped; first: {src / "a.mkv"}: ')
    assert str(caught.value).endswith('nothing to write; merge the other shards without it')
    assert not os.path.exists(tmp_path / 'out.beton')
    write_video_frames(str(src), str(tmp_path / 'out.beton'), shard='1/2', workers=1,
                       progress=False)


def test_problems_go_to_stderr_twenty_at_most(capsys):
    print_problems({'skipped': [], 'warnings': [], 'sidecar': 'x.beton.json'})
    assert capsys.readouterr() == ('', '')
    skipped = [{'path': f'v{i}.mp4', 'reason': 'broken'} for i in range(23)]
    print_problems({'skipped': skipped, 'warnings': [{'path': 'w.mp4', 'message': 'short'}],
                    'sidecar': 'x.beton.json'})
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == '' and lines[0] == 'skipped 23 videos:'
    assert lines[1:21] == [f'  v{i}.mp4: broken' for i in range(20)]
    assert lines[21:] == ['  ... and 3 more (listed in x.beton.json)', '1 warnings:',
                          '  w.mp4: short']


def test_listing_digest_of_utf8_names_is_the_one_shards_were_written_with(tmp_path):
    names = ['a.mp4', os.path.join('clips', 'été', 'vidéo 1.mp4'), os.path.join('z', '数据.mkv')]
    sources = [VideoSource(str(tmp_path / name)) for name in names]
    # the SHA-256 of the names' UTF-8 bytes, as before names not in UTF-8 were read: shards
    # written then still merge with shards written now
    assert listing_digest(video_listing(sources, str(tmp_path))) == \
        '49eff7ef9e17f591b6c68d15ebb94d70ffc44b915b1b4e36d0c54af2a9f4e507'


def test_shards_of_a_src_with_a_name_not_in_utf8(tmp_path, encode_clip, chelsea_pan):
    src = tmp_path / 'src'
    src.mkdir()
    encode_clip(str(src / 'ok.mp4'), chelsea_pan(6))
    encode_clip(str(tmp_path / 'bad.mp4'), chelsea_pan(6, step=3))
    os.rename(tmp_path / 'bad.mp4', os.path.join(os.fsencode(src), b'bad\xffname.mp4'))
    for k in range(2):
        out = str(tmp_path / f'{k}.beton')
        write_video_frames(str(src), out, shard=(k, 2), workers=1, progress=False)
        shard = json.load(open(out + '.json'))['shard']
        # the hash of the names' bytes on disk
        assert shard['listing_sha256'] == hashlib.sha256(b'bad\xffname.mp4\nok.mp4').hexdigest()
