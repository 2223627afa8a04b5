"""Helpers shared by the writers (images, video frames, video pairs).

Output checks, writing a .beton and its sidecar all or nothing (:func:`write_outputs`),
FFCV's size arithmetic, the worker count, a CLI parser whose errors are one line, and
:func:`make_writer`: FFCV's ``DatasetWriter`` made to raise instead of hanging when one of its
processes dies. Nothing here imports ``loaders`` or ``fastssl``.
"""
import argparse
import ctypes
import multiprocessing
import os
import queue
import time

import numpy as np
from tqdm import tqdm

from fastssl_common.atomic import atomic_path, write_json
from fastssl_common.errors import UserError


def default_workers():
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def check_output(out):
    """OUT must end in .beton and its folder must be creatable and writable; nothing is made."""
    if not out.endswith('.beton'):
        raise UserError(f'output {out} must end in .beton')
    if os.path.isdir(out):
        raise UserError(f'output {out} is a folder')
    existing = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f'cannot write {out}: {existing} is not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'cannot write {out}: folder {existing} is not writable')


def write_outputs(out, write_beton, metadata):
    """Write the .beton (``write_beton(tmp_path)``) then its sidecar ``out + '.json'``
    (``metadata``), both atomically; if either fails, neither is left. Returns the sidecar's
    path."""
    with atomic_path(out) as tmp:
        write_beton(tmp)
    sidecar = out + '.json'
    try:
        write_json(sidecar, metadata)
    except BaseException:
        os.remove(out)
        raise
    return sidecar


def stored_size(height, width, max_resolution):
    """(height, width) after FFCV's own longest-side cap (same arithmetic as ffcv's resizer)."""
    if not max_resolution:
        return height, width
    ratio = max_resolution / max(height, width)
    if ratio >= 1:
        return height, width
    new_w, new_h = (ratio * np.array([width, height])).astype(int)
    return int(new_h), int(new_w)


def page_size_for(largest_sample_bytes):
    """A power-of-two FFCV page that holds the largest sample with room to spare."""
    return max(8 << 20, 1 << (2 * int(largest_sample_bytes) + (1 << 20) - 1).bit_length())


def bar_disabled(progress):
    """tqdm's ``disable`` for a ``progress`` option: None shows bars only on a terminal."""
    return None if progress is None else not progress


class ArgParser(argparse.ArgumentParser):
    """argparse, except that a usage error becomes a UserError (one line, exit 2 via run_cli)."""

    def error(self, message):
        raise UserError(message)


def make_writer(fname, fields, page_size, workers, progress=None, unit='img'):
    """FFCV's DatasetWriter, except that a dead worker raises UserError instead of hanging.

    (FFCV's own loop waits forever for samples that a crashed worker will never write.)
    Besides FFCV's ``from_indexed_dataset``, the writer has ``from_jobs(num_samples, jobs,
    work_fn, extra_args)``: FFCV's worker protocol with a caller-supplied worker function.
    """
    from ffcv.memory_allocator import MemoryAllocator
    from ffcv.writer import DatasetWriter

    class CheckedDatasetWriter(DatasetWriter):
        # Same steps as DatasetWriter._write_common in ffcv 1.0.2, plus liveness checks.
        def _write_common(self, num_samples, queue_content, work_fn, extra_worker_args):
            self.num_samples = num_samples
            self.prepare()
            todo = multiprocessing.Queue()
            for content in queue_content:
                todo.put(content)
            for _ in range(self.num_workers):
                todo.put(None)
            allocations = multiprocessing.Queue()
            done = multiprocessing.Value(ctypes.c_uint64, 0)
            allocator = MemoryAllocator(self.fname, self.data_region_start, self.page_size)
            args = (todo, self.metadata_sm, self.metadata_type, self.fields, allocator, done,
                    allocations, *extra_worker_args)
            if self.inline:
                # Cheap work (copying spooled bytes): run it here, with no process start-up.
                try:
                    work_fn(*args)
                    self.finalize(allocations.get())
                finally:
                    self.metadata_sm.close()
                    self.metadata_sm.unlink()
                return
            processes = [multiprocessing.Process(target=work_fn, args=args)
                         for _ in range(self.num_workers)]
            try:
                for process in processes:
                    process.start()
                with tqdm(total=num_samples, unit=unit, desc='writing',
                          disable=bar_disabled(progress)) as bar:
                    written = 0
                    while written < num_samples:
                        raise_if_dead(processes, fname)
                        now = done.value
                        bar.update(now - written)
                        written = now
                        if written < num_samples:
                            time.sleep(0.05)
                allocation_list = []
                for _ in processes:
                    while True:
                        try:
                            allocation_list.extend(allocations.get(timeout=0.2))
                            break
                        except queue.Empty:
                            raise_if_dead(processes, fname)
                for process in processes:
                    process.join()
                self.finalize(allocation_list)
            finally:
                for process in processes:
                    if process.is_alive():
                        process.terminate()
                        process.join()
                self.metadata_sm.close()
                self.metadata_sm.unlink()

        def from_jobs(self, num_samples, jobs, work_fn, extra_args=(), inline=False):
            """Write ``num_samples`` samples; each worker runs ``work_fn`` on queued ``jobs``.

            ``work_fn(queue, metadata_sm, metadata_type, fields, allocator, done, allocations,
            *extra_args)`` follows FFCV's ``worker_job_indexed_dataset`` protocol. ``inline``
            runs one worker in this process (for work too cheap to pay a process start for).
            """
            self.inline = inline
            self._write_common(num_samples, jobs, work_fn, tuple(extra_args))

    writer = CheckedDatasetWriter(fname, fields, page_size=page_size, num_workers=workers)
    writer.inline = False
    return writer


def raise_if_dead(processes, fname):
    """UserError if any of ``processes`` (FFCV writer workers) has exited with an error."""
    for process in processes:
        if process.exitcode not in (None, 0):
            raise UserError(f'an FFCV writer process died (exit code {process.exitcode}) while '
                            f'writing {fname}; nothing was kept')
