"""How the video writers walk a user's SRC folder: folders reached twice through links, and
frame folders the walk cannot read. Videos are encoded here with PyAV; frames are real photos.
"""
import os

import skimage.data

from tests.conftest import encode, pan
from tests.writers.test_image_sources_audit import image, run_unprivileged
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
        f'note: read once, left out where a symbolic link leads to it again: '
        f'{src / "clips"} (the folder {src / "backup"} again), '
        f'{src / "mirror"} (the folder {src / "backup"} again)\n')


def test_a_frame_folder_the_walk_cannot_read_is_refused(tmp_path):
    """os.walk passed over it: the video was missing from the .beton, and the run ended well."""
    src = tmp_path / 'src'
    for sequence in ('seq1', 'seq2'):
        for number in (1, 2):
            image(src / sequence / f'{number:08d}.jpg')
    os.chmod(src / 'seq2', 0)
    try:
        result = run_unprivileged('writers/write_video_frames.py', src, tmp_path / 'out.beton',
                                  '--workers', '1')
    finally:
        os.chmod(src / 'seq2', 0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == f'error: cannot read folder {src / "seq2"}: Permission denied\n'
    assert not os.path.exists(tmp_path / 'out.beton')
