"""A writer killed outright (``kill -9``) cannot clean up after itself: the next run that
writes the same output removes what it left (its spool folder, its temporary .beton, its
lock file)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from fastssl_common.atomic import HOST


@pytest.fixture(scope='module')
def long_clip(module_tmp, encode_clip, chelsea_pan):
    """600 frames: long enough to be caught while the writer spools them."""
    path = module_tmp.mktemp('long') / 'long.mp4'
    return encode_clip(path, chelsea_pan(600, width=320, height=240, step=1))


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith('.'))


def spooling(folder):
    """True once a writer has spooled frames into ``folder``."""
    if not folder.exists():
        return False
    spools = [folder / name / '0.jpgs' for name in leftovers(folder)]
    return any(path.is_file() and path.stat().st_size > 0 for path in spools)


def wait_until_spooling(writer, folder):
    """Until the ``writer`` process has spooled frames into ``folder`` (it must still run)."""
    deadline = time.monotonic() + 120
    while not spooling(folder):
        assert writer.poll() is None, 'the writer finished before it could be stopped'
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_run(long_clip, tmp_path,
                                                                     repo):
    out = tmp_path / 'out' / 'frames.beton'
    command = [sys.executable, 'writers/write_video_frames.py', long_clip, str(out),
               '--workers', '1']
    writer = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until_spooling(writer, out.parent)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    debris = leftovers(out.parent)
    # the empty lock file stays too: the OS let its lock go, and the next writer takes it over
    assert debris == ['.frames.beton.lock', f'.frames.beton.spool-{HOST}-{writer.pid}']
    rerun = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f'removed 1 stale temporary left in {out.parent}' in rerun.stderr
    assert debris[1] in rerun.stderr
    assert sorted(os.listdir(out.parent)) == ['frames.beton', 'frames.beton.json']


@pytest.mark.parametrize('to_group', [True, False], ids=['scancel', 'kill'])
def test_a_writer_stopped_by_sigterm_cleans_up_at_once(long_clip, tmp_path, repo, to_group):
    """A scheduler's time limit or ``scancel`` sends SIGTERM to every process of the job;
    ``kill PID`` to the writer alone. Either way it stops as for Ctrl-C, with nothing left."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('a.mp4', 'b.mp4'):
        os.symlink(long_clip, src / name)
    out = tmp_path / 'out' / 'pairs.beton'
    # one task a video, each several seconds long: the workers must stop with the writer
    command = [sys.executable, 'writers/write_video_pairs.py', str(src), str(out), '--gap', '4',
               '--proposals', '8', '--proposal-ranking', 'contrast', '--segment-frames', '0',
               '--workers', '2']
    writer = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until_spooling(writer, out.parent)
        if to_group:
            os.killpg(writer.pid, signal.SIGTERM)
        else:
            os.kill(writer.pid, signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = writer.communicate(timeout=60)
        # the workers are stopped, not waited for: their videos had seconds of work left
        assert time.monotonic() - sent < 3, 'the writer waited for its workers to finish'
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == 'stopped by SIGTERM'
    assert 'Traceback' not in stderr
    assert not out.parent.exists()            # the folder it made for OUT is gone too
