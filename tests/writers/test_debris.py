"""A writer killed outright (``kill -9``) cannot clean up after itself: the next run that
writes the same output removes what it left (its spool folder, its temporary .beton)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from fastssl_common.atomic import HOST


@pytest.fixture(scope='module')
def long_clip(tmp_path_factory, encode_clip, chelsea_pan):
    """600 frames: long enough to be caught while the writer spools them."""
    path = tmp_path_factory.mktemp('long') / 'long.mp4'
    return encode_clip(path, chelsea_pan(600, width=320, height=240, step=1))


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith('.'))


def spooling(folder):
    """True once a writer has spooled frames into ``folder``."""
    if not folder.exists():
        return False
    spools = [folder / name / '0.jpgs' for name in leftovers(folder)]
    return any(path.is_file() and path.stat().st_size > 0 for path in spools)


def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_run(long_clip, tmp_path,
                                                                     repo):
    out = tmp_path / 'out' / 'frames.beton'
    command = [sys.executable, 'writers/write_video_frames.py', long_clip, str(out),
               '--workers', '1']
    writer = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not spooling(out.parent):
            assert writer.poll() is None, 'the writer finished before it could be killed'
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    debris = leftovers(out.parent)
    assert debris == [f'.frames.beton.spool-{HOST}-{writer.pid}']
    rerun = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f'removed 1 stale temporary left in {out.parent}' in rerun.stderr
    assert debris[0] in rerun.stderr
    assert sorted(os.listdir(out.parent)) == ['frames.beton', 'frames.beton.json']
