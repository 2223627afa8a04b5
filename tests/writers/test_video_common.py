"""A video reading process that dies (the out-of-memory killer, a crash in a decoder) costs its
tasks a second try each, alone; a task that dies alone too is skipped, and the rest is written.
The deaths are real: SIGKILL, sent by the task itself or from outside to the worker holding a
video open."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fastssl_common.errors import UserError
from writers.video_common import Progress, claim_spare_core, run_per_video
from writers.writer_common import default_workers

KILLED = 'its reading process was killed by SIGKILL (out of memory?)'


def dies_on_odd_jobs(job):
    """Pool task: job ``(n, marker)`` kills its own process when ``n`` is odd and ``marker``
    is None or does not exist yet (it is created first: the next try lives)."""
    number, marker = job
    if number % 2:
        if marker is None or not os.path.exists(marker):
            if marker is not None:
                open(marker, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
        if marker is not None and marker.endswith('raise'):
            raise ValueError(f'job {number} failed')
    return number * 10


def test_a_task_that_dies_every_time_gets_its_death_as_result():
    jobs = [(n, None) for n in range(5)]
    results = run_per_video(dies_on_odd_jobs, jobs, workers=2, progress=False,
                            on_death=lambda job, reason: ('died', job[0], reason))
    assert results == [0, ('died', 1, KILLED), 20, ('died', 3, KILLED), 40]


def test_a_task_killed_once_is_read_again(tmp_path):
    jobs = [(n, str(tmp_path / f'tried-{n}')) for n in range(4)]
    results = run_per_video(dies_on_odd_jobs, jobs, workers=2, progress=False,
                            on_death=lambda job, reason: pytest.fail(reason))
    assert results == [0, 10, 20, 30]
    assert sorted(os.listdir(tmp_path)) == ['tried-1', 'tried-3']


@pytest.mark.e2e   # 6000 pool tasks, 15-20 s: make test-e2e
def test_a_worker_dead_before_every_task_is_handed_out_is_a_death_like_any_other(tmp_path):
    """The tasks are handed out before the first result is read: a worker that died meanwhile
    broke the hand-out itself (a BrokenProcessPool traceback) instead of its task being read
    again."""
    jobs = [(1, str(tmp_path / 'tried-1'))] + [(n, None) for n in range(2, 12000, 2)]
    results = run_per_video(dies_on_odd_jobs, jobs, workers=2, progress=False,
                            on_death=lambda job, reason: pytest.fail(reason))
    assert results == [10] + list(range(20, 120000, 20))


def test_without_on_death_a_death_ends_the_run():
    with pytest.raises(UserError, match=r'^a video reading process was killed by SIGKILL '
                                        r'\(out of memory\?\); nothing was written$'):
        run_per_video(dies_on_odd_jobs, [(0, None), (1, None)], workers=2, progress=False)


def test_an_exception_in_the_second_try_propagates(tmp_path):
    jobs = [(0, None), (1, str(tmp_path / 'raise'))]
    with pytest.raises(ValueError, match='job 1 failed'):
        run_per_video(dies_on_odd_jobs, jobs, workers=2, progress=False,
                      on_death=lambda job, reason: None)


def sigint_action(job):
    return signal.getsignal(signal.SIGINT)


def test_pool_workers_end_quietly_on_ctrl_c():
    """Ctrl-C reaches every process of the group: an idle worker raising KeyboardInterrupt
    printed a traceback under the writer's 'interrupted'. Workers take SIGINT's default
    action (end) and leave the report to the writing process."""
    assert run_per_video(sigint_action, [0, 1, 2], workers=2, progress=False) == [
        signal.SIG_DFL] * 3


def test_ctrl_c_while_a_task_is_forked_to_be_read_again_leaves_no_process(tmp_path, repo):
    """Ctrl-C right after the process that reads a task again alone was forked, before it was
    listed: it was never stopped and read on after the writer ended (here: for ten minutes).
    And a SIGTERM sent to it while it was still being forked was lost: the writer waited."""
    marker, pids = tmp_path / 'tried', tmp_path / 'pids'
    script = f"""
import os, signal, sys, time
from writers.video_common import run_per_video

def read(job):
    if job == 1:
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)
    return job

def profile(frame, event, arg):
    if event == 'call' and frame.f_code.co_name == '_run_alone':
        profile.armed = True
    elif (profile.armed and event == 'return' and frame.f_code.co_name == '_launch'
          and 'popen_fork' in frame.f_code.co_filename):
        profile.armed = False
        os.kill(os.getpid(), signal.SIGINT)
profile.armed = False
os.register_at_fork(after_in_child=lambda: open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'))
sys.setprofile(profile)
try:
    run_per_video(read, [0, 1], workers=2, progress=False, on_death=lambda job, why: None)
except KeyboardInterrupt:
    print('interrupted')
"""
    # output to a file: a process left behind would hold a pipe open until it ended
    with open(tmp_path / 'out', 'w+') as out, open(tmp_path / 'err', 'w+') as err:
        try:
            code = subprocess.run([sys.executable, '-c', script], stdout=out, stderr=err,
                                  timeout=60, cwd=repo).returncode
        except subprocess.TimeoutExpired:
            code = 'waited for its reading process'
        out.seek(0), err.seek(0)
        ended = (code, out.read(), err.read().startswith('note: a video reading process died'))
    alive = []
    for pid in pids.read_text().split():
        try:
            with open(f'/proc/{pid}/stat') as handle:
                state = handle.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state != 'Z':
            alive.append(int(pid))
            os.kill(int(pid), signal.SIGKILL)
    assert ended == (0, 'interrupted\n', True)
    assert alive == []


# ---------------------------------------------------------------- the writers, killed from outside

@pytest.fixture(scope='module')
def src(module_tmp, encode_clip, chelsea_pan):
    """Three videos; ``long.mp4`` (400 frames) is read long enough to be caught."""
    folder = module_tmp.mktemp('src')
    encode_clip(folder / 'long.mp4', chelsea_pan(400, width=320, height=240, step=1))
    for name, count in (('a.mp4', 40), ('b.mp4', 30)):
        encode_clip(folder / name, chelsea_pan(count, width=96, height=64))
    return folder


def without(src, name, folder):
    """``src``'s videos but ``name``, linked into ``folder``."""
    folder.mkdir()
    for other in sorted(os.listdir(src)):
        if other != name:
            os.symlink(src / other, folder / other)
    return folder


def children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as stat:
                    parent = int(stat.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def holds_open(pid, path):
    try:
        names = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f'/proc/{pid}/fd/{name}') == path:
                return True
        except OSError:
            pass
    return False


def run_killing(repo, command, video, times):
    """Run ``command`` and SIGKILL each of its processes that opens ``video``, up to ``times``
    of them; (CompletedProcess-like result, kills)."""
    writer = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    kills, killed = [], set()

    def watch():
        while writer.poll() is None and len(kills) < times:
            for child in children(writer.pid):
                if len(kills) < times and child not in killed and holds_open(child, str(video)):
                    os.kill(child, signal.SIGKILL)
                    killed.add(child)
                    kills.append(child)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stdout, stderr = writer.communicate(timeout=300)
    finally:
        writer.kill()
        watcher.join()
    return subprocess.CompletedProcess(command, writer.returncode, stdout, stderr), len(kills)


def write(repo, script, src, out, *args):
    result = subprocess.run([sys.executable, script, str(src), str(out), *args], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def test_a_frames_writer_worker_killed_once_still_writes_every_video(src, tmp_path, repo):
    options = ['--workers', '2', '--max-resolution', '96']
    reference = write(repo, 'writers/write_video_frames.py', src, tmp_path / 'ref.beton',
                      *options)
    out = tmp_path / 'killed.beton'
    result, kills = run_killing(repo, [sys.executable, 'writers/write_video_frames.py',
                                       str(src), str(out), *options], src / 'long.mp4', 1)
    assert kills == 1, 'the writer finished before a worker could be killed'
    assert result.returncode == 0, result.stderr
    assert 'note: a video reading process died; the ' in result.stderr
    assert 'are read again, one at a time' in result.stderr
    assert 'videos: 3 written, 0 skipped' in result.stdout
    assert out.read_bytes() == reference


def test_a_video_that_kills_every_process_reading_it_is_skipped(src, tmp_path, repo):
    options = ['--gap', '4', '--workers', '2', '--max-resolution', '96', '--proposals', '2']
    reference = write(repo, 'writers/write_video_pairs.py',
                      without(src, 'long.mp4', tmp_path / 'others'), tmp_path / 'ref.beton',
                      *options)
    out = tmp_path / 'killed.beton'
    command = [sys.executable, 'writers/write_video_pairs.py', str(src), str(out), *options]
    result, kills = run_killing(repo, command, src / 'long.mp4', 100)
    assert result.returncode == 0, result.stderr
    assert kills >= 2                          # in the pool, then alone
    assert f'{src / "long.mp4"}: {KILLED}' in result.stderr
    assert json.loads((tmp_path / 'killed.beton.json').read_text())['skipped'] == [
        {'path': str(src / 'long.mp4'), 'reason': KILLED, 'cuts': []}]
    assert out.read_bytes() == reference       # the other two videos, as written without it

    result, _ = run_killing(repo, command[:3] + [str(tmp_path / 'strict.beton'), '--strict']
                            + options, src / 'long.mp4', 100)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: video {src / "long.mp4"}: {KILLED} (--strict)')
    assert not (tmp_path / 'strict.beton').exists()


def test_the_reading_processes_die_with_a_writer_killed_alone(src, tmp_path, repo):
    """``kill -9`` of the writer's process alone (not its group): its reading processes read
    on, then waited for work for ever, holding OUT's lock (its open file is inherited), so
    that every later write of OUT was refused as 'being written by another writer'."""
    out = tmp_path / 'f.beton'
    command = [sys.executable, 'writers/write_video_frames.py', str(src), str(out),
               '--workers', '2', '--max-resolution', '96']
    writer = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(holds_open(child, str(src / 'long.mp4')) for child in children(writer.pid)):
        assert writer.poll() is None and time.monotonic() < deadline, 'no video was read'
        time.sleep(0.002)
    workers = children(writer.pid)
    writer.kill()
    writer.wait()
    try:
        deadline = time.monotonic() + 10
        while any(os.path.exists(f'/proc/{pid}') for pid in workers):
            assert time.monotonic() < deadline, 'the reading processes outlive the writer'
            time.sleep(0.05)
        write(repo, 'writers/write_video_frames.py', src, out, '--workers', '2',
              '--max-resolution', '96')
    finally:
        for pid in workers:
            if os.path.exists(f'/proc/{pid}'):
                os.kill(pid, signal.SIGKILL)


def claims(job):
    """``claim_spare_core()`` at once (job 'now'), or retried until it succeeds (job 'wait',
    within 60 s), then the job's state."""
    from writers import video_common
    deadline = time.monotonic() + 60
    claimed = claim_spare_core()
    while job == 'wait' and not claimed and time.monotonic() < deadline:
        time.sleep(0.01)
        claimed = claim_spare_core()
    return claimed, video_common._PROGRESS.state[video_common._JOB]


def test_a_spare_cpu_is_one_no_worker_and_no_other_thread_holds():
    progress = Progress(4, workers=2)
    assert not progress.claim_core(0, 2)                # a worker for each waiting job
    progress.state[0] = progress.state[1] = 1
    assert not progress.claim_core(0, 2)                # two running, two waiting
    assert progress.claim_core(0, 8) and progress.state[0] == 3   # more CPUs than workers
    assert progress.claim_core(1, 4) and not progress.claim_core(1, 4)  # 2 workers + 2 threads
    progress = Progress(3, workers=3)
    progress.state[0], progress.state[1], progress.state[2] = 2, 1, 1
    assert progress.claim_core(1, 3)                    # the finished job's CPU...
    assert not progress.claim_core(2, 3)                # ...claimed once, not by every job
    progress.state[1] = 2
    assert progress.claim_core(2, 3)                    # released when its job ended
    assert not claim_spare_core()                       # outside a run


@pytest.mark.skipif(default_workers() < 2, reason='one CPU: none is ever spare')
def test_claims_within_a_run():
    cpus = default_workers()
    # one worker in this process: another CPU is spare, whatever waits
    assert run_per_video(claims, ['now', 'now'], 1, False) == [(True, 3)] * 2
    # a pool of as many workers as CPUs: the job still running claims the CPU of the one
    # that ended
    assert run_per_video(claims, ['wait', 'now'], cpus, False)[0] == (True, 3)


def dies_once_then_claims(job):
    """Job 'die' kills its process on its first try, then (read again alone) claims a spare
    CPU; the others return at once."""
    if job[0] == 'die':
        if not os.path.exists(job[1]):
            open(job[1], 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
        return claim_spare_core()
    time.sleep(0.5)     # still running when the other job's process dies
    return None


@pytest.mark.skipif(default_workers() < 2, reason='one CPU: none is ever spare')
def test_a_task_read_again_alone_has_the_other_cpus(tmp_path):
    # the jobs left over wait for a fresh pool: while a suspect runs alone they hold no CPU
    marker = str(tmp_path / 'tried')
    jobs = [('die', marker), ('other', None), ('other', None), ('other', None)]
    results = run_per_video(dies_once_then_claims, jobs, default_workers(), False,
                            on_death=lambda job, reason: pytest.fail(reason))
    assert results[0] is True
