"""Ctrl-C at the moments the writers are least ready for it: inside FFCV's page allocator,
while FFCV builds the allocation table, just after it made its shared memory, between the
renames of a sidecar and its .beton, while the writers remove their temporaries. Each test
delivers a real SIGINT to this process at that moment (found with a profiler hook) and
checks that the write stops with the KeyboardInterrupt, not with another error, a swallowed
interrupt, a leaked shared memory segment, half an output or a temporary left behind."""
import contextlib
import hashlib
import json
import os
import signal
import sys

import numpy as np
import pytest

from fastssl_common.atomic import atomic_path
from fastssl_common.formats import IMAGE, LABEL
from writers.spool import IMAGE_REF, Spool, write_spooled
from writers.write_video_frames import write_video_frames
from writers.writer_common import write_outputs


@contextlib.contextmanager
def ctrl_c_at(when):
    """Send this process SIGINT at the first profiler event ``(frame, event, arg)`` for which
    ``when`` is true (a real signal: its handler runs where Python next checks for one); not
    in the processes this one forks, which inherit the hook."""
    pid = os.getpid()

    def hook(frame, event, arg):
        if os.getpid() == pid and when(frame, event, arg):
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(None)


def in_ffcv(frame, module):
    return frame.f_code.co_filename.endswith(os.path.join('ffcv', module))


@pytest.fixture
def spooled(tmp_path):
    """``write(path)``: write_spooled of three real JPEG frames to ``path``."""
    from ffcv.fields import IntField, RGBImageField

    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    spool_path = str(tmp_path / '0.jpgs')
    refs = np.zeros(3, IMAGE_REF)
    with Spool(spool_path, 90) as spool:
        for i in range(3):
            refs[i] = (0, *spool.add(rgb))
    fields = {IMAGE: RGBImageField(write_mode='jpg'), LABEL: IntField()}
    columns = {IMAGE: refs, LABEL: np.arange(3)}
    return lambda path: write_spooled(str(path), fields, columns, [spool_path])


def test_ctrl_c_inside_ffcvs_page_allocator_stops_the_write(spooled, tmp_path):
    """The Ctrl-C lands in ``malloc`` after a page was booked, before anything was put in it:
    FFCV's allocator then flushed that empty page on the way out, failed its own assertion,
    and the user got an AssertionError traceback (and a BufferError) instead of 'interrupted'."""
    def booked(frame, event, arg):
        return (event == 'c_call' and in_ffcv(frame, 'memory_allocator.py')
                and frame.f_code.co_name == 'malloc' and getattr(arg, '__name__', '') == 'fill')
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(booked):
        spooled(tmp_path / 'x.beton')


def test_ctrl_c_while_ffcv_builds_the_allocation_table_is_not_swallowed(spooled, tmp_path):
    """FFCV builds the table inside a bare ``except:``: the interrupt was swallowed, an empty
    table written, and the writer went on to report its own temporary as truncated."""
    def building(frame, event, arg):
        return event == 'c_call' and in_ffcv(frame, 'writer.py') and arg is np.array
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(building):
        spooled(tmp_path / 'x.beton')


def test_ctrl_c_just_after_the_shared_metadata_was_made_frees_it(spooled, tmp_path):
    """A stop between FFCV making the samples' shared memory and the work starting left it in
    /dev/shm (and a resource_tracker warning on stderr)."""
    made = []

    def after_shared_memory(frame, event, arg):
        if made:
            return event in ('call', 'c_call')
        if (event == 'return' and frame.f_code.co_name == '__init__'
                and frame.f_code.co_filename.endswith('shared_memory.py')):
            made.append(frame.f_locals['self'].name)
        return False
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(after_shared_memory):
        spooled(tmp_path / 'x.beton')
    assert made and not os.path.exists(os.path.join('/dev/shm', made[0].lstrip('/')))


def removing(name):
    """The profiler event of a call to ``os.unlink`` or ``os.remove`` made in ``name``."""
    return lambda frame, event, arg: (
        event == 'c_call' and frame.f_code.co_filename.endswith(name)
        and getattr(arg, '__name__', '') in ('unlink', 'remove'))


def test_ctrl_c_while_a_video_writer_removes_its_spool_folder(planted_cut_clip, tmp_path):
    """The last moment of a write: OUT is in place and the spool folder is being removed. The
    Ctrl-C stopped the removal half-way and left the folder next to OUT."""
    clip = tmp_path / 'clip.mp4'
    planted_cut_clip.write(str(clip))
    out = tmp_path / 'out' / 'frames.beton'
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(removing('shutil.py')):
        write_video_frames(str(clip), str(out), workers=1, progress=False)
    assert sorted(os.listdir(out.parent)) == ['frames.beton', 'frames.beton.json']


def test_ctrl_c_while_a_failed_write_removes_its_temporary(tmp_path):
    out = tmp_path / 'x.json'
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(removing('atomic.py')):
        with atomic_path(out) as tmp:
            with open(tmp, 'w') as handle:
                handle.write('half')
            raise ValueError('the write failed')
    assert os.listdir(tmp_path) == []


def test_ctrl_c_between_the_sidecars_rename_and_the_betons(spooled, tmp_path):
    """The sidecar is renamed into place first: a stop before the .beton's rename left the new
    sidecar with no .beton (or beside an earlier one it does not describe)."""
    out = tmp_path / 'x.beton'

    def sidecar_renamed(frame, event, arg):
        return (event == 'c_return' and frame.f_code.co_filename.endswith('atomic.py')
                and getattr(arg, '__name__', '') == 'replace')
    with pytest.raises(KeyboardInterrupt), ctrl_c_at(sidecar_renamed):
        write_outputs(str(out), spooled, {'format': 'test'}, progress=False)
    assert sorted(os.listdir(tmp_path)) == ['0.jpgs', 'x.beton', 'x.beton.json']
    integrity = json.load(open(f'{out}.json'))['integrity']
    assert integrity['sha256'] == hashlib.sha256(out.read_bytes()).hexdigest()
