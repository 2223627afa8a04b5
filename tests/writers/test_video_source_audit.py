"""How the video writers walk a user's SRC folder: a folder reached twice through links is read
once and said (a frame folder the walk cannot read: tests/writers/test_image_sources_audit.py).
Videos are encoded here with PyAV.
"""
import os

import skimage.data

from tests.conftest import encode, pan
from writers.video_source import find_videos


def test_a_folder_linked_twice_is_read_once_at_its_first_path_and_said(tmp_path, capsys):
    """Which of the two paths was read depended on the disk's listing order, and the other
    was left out without a word."""
    src = tmp_path / 'src'
    (src / 'clips').mkdir(parents=True)
    encode(src / 'clips' / 'a.mp4', pan(skimage.data.chelsea(), 4, 4, 200, (64, 48)))
    for link in ('mirror', 'backup'):
        os.symlink('clips', src / link)
    assert [s.path for s in find_videos(str(src))] == [str(src / 'backup' / 'a.mp4')]
    assert capsys.readouterr().err == (
        f'note: a symbolic link leads to a folder or file again: read once, at its first '
        f'path in sorted order; left out '
        f'{src / "clips"} (the folder {src / "backup"} again), '
        f'{src / "mirror"} (the folder {src / "backup"} again)\n')


def test_a_video_file_linked_twice_is_one_video_read_once_and_said(tmp_path, capsys):
    """It was read twice: the same frames under two video ids, two labels for one video. A
    link to a video outside SRC is a video like any other."""
    outside = tmp_path / 'outside.mp4'
    src = tmp_path / 'src'
    src.mkdir()
    encode(src / 'b.mp4', pan(skimage.data.chelsea(), 4, 4, 200, (64, 48)))
    encode(outside, pan(skimage.data.astronaut(), 4, 4, 200, (64, 48)))
    os.symlink('b.mp4', src / 'a.mp4')
    os.symlink(src / 'b.mp4', src / 'c.mp4')
    os.symlink(outside, src / 'd.mp4')
    assert [s.path for s in find_videos(str(src))] == [str(src / 'a.mp4'), str(src / 'd.mp4')]
    assert capsys.readouterr().err == (
        f'note: a symbolic link leads to a folder or file again: read once, at its first '
        f'path in sorted order; left out '
        f'{src / "b.mp4"} (the file {src / "a.mp4"} again), '
        f'{src / "c.mp4"} (the file {src / "a.mp4"} again)\n')
