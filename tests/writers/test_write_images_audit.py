"""The image writer as its pool, its signals and its odd sources test it: an image listed twice,
a side over JPEG's limit, a writer killed outright while its reading processes work, a reading
process killed while it hands its images back, and a stop while large images are read.

Real image files (Pillow), the CLI in a subprocess where the behaviour is the CLI's."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import skimage.data
from PIL import Image

from writers.write_images import write_images

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def save(image, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path)
    return path


def start_writer(*args):
    """The CLI in a process group of its own; its progress lines on stdout."""
    return subprocess.Popen([sys.executable, 'writers/write_images.py', *map(str, args)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_line(process, start):
    for line in process.stdout:
        if line.startswith(start):
            return line
    raise AssertionError(f'no line starting {start!r}: {process.communicate()}')


def reading_processes(pid, count=2):
    """The ``count`` reading processes of the writer ``pid``, once it has started them."""
    deadline = time.monotonic() + 30
    while True:
        with open(f'/proc/{pid}/task/{pid}/children') as handle:
            found = [int(child) for child in handle.read().split()]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f'{len(found)} reading processes started'
        time.sleep(0.01)


@pytest.fixture(scope='module')
def large_images(tmp_path_factory):
    """Four 10000 x 10000 PNGs (one plain colour: small files, about a second to decode)."""
    root = tmp_path_factory.mktemp('large')
    first = save(Image.new('RGB', (10000, 10000), (10, 200, 30)), str(root / 'a0.png'))
    for i in range(1, 4):
        shutil.copy(first, root / f'a{i}.png')
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_an_image_listed_twice_is_skipped_and_counted_once(tmp_path):
    """A list file may name one image twice (oversampling): it used to be listed twice among
    the unreadable images and counted twice among the conversions when not on adjacent lines."""
    save(Image.fromarray(skimage.data.coffee()).resize((90, 60)).convert('P'),
         str(tmp_path / 'p.png'))
    save(Image.fromarray(skimage.data.astronaut()).resize((64, 64)), str(tmp_path / 'rgb.png'))
    (tmp_path / 'bad.jpg').write_bytes(b'not an image')
    listing = tmp_path / 'list.txt'
    listing.write_text('p.png 0\nbad.jpg 1\nrgb.png 1\np.png 0\nbad.jpg 1\n')
    summary = write_images(listing, tmp_path / 'o.beton', workers=1, progress=False)
    assert summary['num_samples'] == 3
    assert summary['skipped'] == [{'path': str(tmp_path / 'bad.jpg'),
                                   'reason': 'not a recognised image file'}]
    assert summary['converted'] == {'P': 1}


def test_a_side_over_jpegs_limit_is_skipped_not_a_traceback(tmp_path):
    """FFCV's JPEG encoder raises for a side over libjpeg's 65500 px (FFCV stores 65535)."""
    save(Image.new('RGB', (65520, 8), (10, 200, 30)), str(tmp_path / 'src' / 'wide.png'))
    save(Image.fromarray(skimage.data.astronaut()).resize((64, 64)),
         str(tmp_path / 'src' / 'small.png'))
    summary = write_images(tmp_path / 'src', tmp_path / 'o.beton', max_resolution=0,
                           workers=1, progress=False)
    assert summary['num_samples'] == 1
    assert summary['skipped'] == [{
        'path': str(tmp_path / 'src' / 'wide.png'),
        'reason': 'too large (65520x8) to store as JPEG (at most 65500 px a side); lower '
                  '--max-resolution or use --write-mode raw'}]
    raw = write_images(tmp_path / 'src', tmp_path / 'raw.beton', max_resolution=0,
                       write_mode='raw', workers=1, progress=False)
    assert raw['num_samples'] == 2 and raw['skipped'] == []


def test_a_rerun_after_kill_9_of_the_writer_alone_writes(large_images, tmp_path):
    """Its reading processes outlived it, waiting for work for ever and holding the lock file
    they inherit: every later write of OUT was refused as 'being written by another writer'."""
    out = tmp_path / 'o.beton'
    writer = start_writer(large_images, out, '--workers', '2')
    wait_for_line(writer, 'reading images:')
    workers = reading_processes(writer.pid)
    writer.kill()
    writer.wait()           # not communicate(): reading processes left alive hold its pipes
    writer.stdout.close()
    writer.stderr.close()
    try:
        deadline = time.monotonic() + 10
        while any(os.path.exists(f'/proc/{pid}') for pid in workers):
            assert time.monotonic() < deadline, 'the reading processes outlive the writer'
            time.sleep(0.05)
        small = save(Image.fromarray(skimage.data.astronaut()).resize((64, 64)),
                     str(tmp_path / 'small' / 'a.png'))
        rerun = subprocess.run([sys.executable, 'writers/write_images.py',
                                os.path.dirname(small), str(out)], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert 'removed 1 stale temporary' in rerun.stderr
        assert sorted(os.listdir(tmp_path)) == ['o.beton', 'o.beton.json', 'small']
    finally:
        for pid in workers:
            if os.path.exists(f'/proc/{pid}'):
                os.kill(pid, signal.SIGKILL)


def test_a_stop_does_not_wait_for_the_images_being_read(large_images, tmp_path):
    """SIGTERM to the writer alone (``kill PID``): its reading processes stop now; they used to
    finish the images they held, and the one queued after (seconds each for large photos)."""
    writer = start_writer(large_images, tmp_path / 'o.beton', '--workers', '2')
    wait_for_line(writer, 'reading images:')
    time.sleep(0.3)           # both processes are decoding their first image
    os.kill(writer.pid, signal.SIGTERM)
    stopped = time.monotonic()
    _, err = writer.communicate(timeout=60)
    took = time.monotonic() - stopped
    assert (writer.returncode, err) == (143, 'stopped by SIGTERM\n')
    assert took < 1.5, f'it ended {took:.1f} s after SIGTERM'
    assert os.listdir(tmp_path) == []


def _writing(pid):
    """True once the process ``pid`` is inside write(2) or has written anything."""
    try:
        with open(f'/proc/{pid}/syscall') as handle:
            if handle.read().split()[0] == '1':
                return True
        with open(f'/proc/{pid}/io') as handle:
            return int(handle.read().split('wchar:')[1].split()[0]) > 0
    except (OSError, IndexError):
        return False


def test_a_reading_process_killed_while_it_hands_back_images_ends_in_one_line(
        large_images, tmp_path):
    """The pool's processes sent the encoded images back through a pipe: one killed (out of
    memory) in the middle of 300 MB of raw pixels left the pool waiting for ever for the rest.
    Here the first reading process seen writing, or done with a write, is killed (before the
    fix: in that long write to the pipe)."""
    writer = start_writer(large_images, tmp_path / 'o.beton', '--workers', '2',
                          '--max-resolution', '0', '--write-mode', 'raw')
    try:
        wait_for_line(writer, 'reading images:')
        workers = reading_processes(writer.pid)
        deadline = time.monotonic() + 30
        writing = []
        while not writing:
            assert time.monotonic() < deadline and writer.poll() is None
            writing = [pid for pid in workers if _writing(pid)]
        os.kill(writing[0], signal.SIGKILL)
        _, err = writer.communicate(timeout=20)
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.communicate()
    assert writer.returncode == 2
    assert err.startswith('error: an image reading process died (out of memory?) after ')
    assert len(err.splitlines()) == 1
    assert os.listdir(tmp_path) == []
