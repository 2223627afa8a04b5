"""Helpers shared by the writers (images, video frames, video pairs).

Output checks, the worker count and size cap, writing a .beton and its sidecar all or
nothing, with the file's size and hashes in the sidecar (:func:`write_outputs`), FFCV's size
arithmetic, and :func:`make_writer`: FFCV's ``DatasetWriter`` filled by a worker function
in this process. Nothing here imports ``loaders`` or ``fastssl``.
"""
import contextlib
import ctypes
import multiprocessing
import os
import traceback

import numpy as np

from fastssl_common.atomic import (
    atomic_path,
    stop_signals_held,
    temporary_name,
    write_json,
)
from fastssl_common.beton_file import check_layout, file_digest
from fastssl_common.errors import UserError
from fastssl_common.numbers import check_number
from fastssl_common.progress import progress_bar

MIN_RESOLUTION = 16     # a stored side below this holds too little for a training view


def check_workers(workers):
    """``--workers``: a whole number >= 1, or 0 / None for one per CPU."""
    if workers is None:
        return default_workers()
    return check_number(workers, '--workers', 1, zero='one per CPU') or default_workers()


def check_resolution(value, flag='max-resolution'):
    """``--max-resolution``: 0 (no cap) or at least :data:`MIN_RESOLUTION` pixels."""
    return check_number(value, f'--{flag}', MIN_RESOLUTION, zero='no cap')


def default_workers():
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def add_output_arguments(parser, *, source, workers, unreadable):
    """The command-line arguments every sample writer shares: SRC (``source``: what it may
    be), OUT.beton, the stored images' size cap and JPEG quality, ``--workers`` (``workers``:
    what the processes do) and ``--strict`` (``unreadable``: what is skipped without it)."""
    parser.add_argument('src', metavar='SRC', help=source)
    parser.add_argument('out', metavar='OUT.beton', help='output file (must end in .beton)')
    parser.add_argument('--max-resolution', type=int, default=512,
                        help='cap on the longest side in pixels, >= 16, 0 for none '
                             '(default 512)')
    parser.add_argument('--jpeg-quality', type=int, default=90,
                        help='JPEG quality, 1 to 100 (default 90)')
    parser.add_argument('--workers', type=int, default=None,
                        help=f'{workers}, 0 for one per CPU (default)')
    parser.add_argument('--strict', action='store_true',
                        help=f'stop at the first unreadable {unreadable} instead of skipping it')


def check_output(out, src=None):
    """OUT must end in .beton, must not be SRC (``src``, when given) and its folder must be
    creatable and writable; nothing is made. Returns the path to write: OUT, or the file OUT
    links to, which must end in .beton too (a .beton linked onto another disk is written
    there, as ``cp`` would, not replaced by a file beside the link) and lie in a folder that
    exists (a link into a file system that is not mounted would fill the disk under it)."""
    if not out.endswith('.beton'):
        raise UserError(f'output {out} must end in .beton')
    if src is not None and os.path.realpath(out) == os.path.realpath(src):
        raise UserError(f'output {out} is SRC itself: writing it would replace what is read')
    if os.path.islink(out):
        target = os.path.realpath(out)
        # a link onto a video, an image or notes would have it replaced by the .beton
        if not target.endswith('.beton'):
            raise UserError(f'output {out} links to {target}, which does not end in .beton')
        if not os.path.isdir(os.path.dirname(target)):
            raise UserError(f'output {out} is a symbolic link to {target}, whose folder does '
                            f'not exist (a file system not mounted?)')
        out = target
    if os.path.isdir(out):
        raise UserError(f'output {out} is a folder')
    if os.path.isdir(out + '.json'):
        raise UserError(f'output {out}.json (its sidecar) is a folder')
    existing = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f'cannot write {out}: {existing} is a file, not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'cannot write {out}: folder {existing} is not writable')
    # the sidecar's temporary is the longest name a writer makes: one too long fails here,
    # not after the work
    temporary_name(out + '.json')
    return out


def print_output(summary, replaced):
    """The writers' last line: OUT and its sidecar, and whether an earlier OUT was replaced
    (a writer replaces its output, so a second shard written to the first one's name shows)."""
    note = '; replaced the earlier file' if replaced else ''
    print(f"output: {summary['out']} (metadata: {summary['sidecar']}{note})")


def write_outputs(out, write_beton, metadata, progress=None):
    """Write the .beton (``write_beton(tmp_path)``) and its sidecar ``out + '.json'``
    (``metadata`` and the file's ``integrity``: :func:`beton_integrity`), each atomically; if
    either fails, neither new file is left and an earlier OUT and sidecar stay as they were.
    Returns the sidecar's path."""
    sidecar = out + '.json'
    with contextlib.ExitStack() as renames, atomic_path(out) as tmp:
        write_beton(tmp)
        integrity = beton_integrity(tmp, progress)
        # a stop (Ctrl-C, SIGTERM) between the two renames left the new sidecar beside an
        # earlier OUT, or none: it waits until both are done (``renames`` ends last)
        renames.enter_context(stop_signals_held())
        # the sidecar first: a full disk then fails before the .beton replaces an earlier one
        write_json(sidecar, dict(metadata, integrity=integrity))
    return sidecar


def beton_integrity(path, progress=None):
    """The sidecar's ``integrity`` entry for the .beton just written at ``path``: its size,
    SHA-256 and per-page SHA-256 (``python -m loaders.verify`` checks them). Reading it back
    also checks that it is as long as its header and allocation table say."""
    layout = check_layout(path)
    with progress_bar(total=layout.size, desc='hashing', unit='B', unit_scale=True,
                      enabled=progress is not False) as bar:
        return file_digest(path, layout.page_size, bar.update)


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


def make_writer(fname, fields, page_size):
    """FFCV's ``DatasetWriter`` with ``from_jobs(num_samples, jobs, work_fn, extra_args)``:
    FFCV's worker protocol with a caller-supplied worker function, run in this process.

    The writers only copy bytes already encoded (:mod:`writers.spool`, the merge): cheaper
    than starting FFCV's writer processes (about 0.3 s), and one writer fills the pages in
    sample order, so a file comes out the same every time.
    """
    from ffcv.memory_allocator import MemoryAllocator
    from ffcv.writer import DatasetWriter

    class InlineDatasetWriter(DatasetWriter):
        # The steps of DatasetWriter._write_common in ffcv 1.0.2, with its one worker here.
        def _write_common(self, num_samples, queue_content, work_fn, extra_worker_args):
            self.num_samples = num_samples
            self.prepare()
            try:    # from here on the shared metadata exists: a Ctrl-C anywhere must free it
                todo = multiprocessing.Queue()
                for content in queue_content:
                    todo.put(content)
                todo.put(None)
                allocations = multiprocessing.Queue()
                done = multiprocessing.Value(ctypes.c_uint64, 0)
                allocator = MemoryAllocator(self.fname, self.data_region_start, self.page_size)
                try:
                    work_fn(todo, self.metadata_sm, self.metadata_type, self.fields, allocator,
                            done, allocations, *extra_worker_args)
                    self.finalize(allocations.get())
                except BaseException as err:
                    # the worker's frames still hold views of the shared metadata, and
                    # close() below would fail on them with a BufferError hiding ``err``
                    traceback.clear_frames(err.__traceback__)
                    raise
            finally:
                self.metadata_sm.close()
                self.metadata_sm.unlink()

        def finalize(self, allocations):
            # FFCV builds the allocation table inside a bare ``except:``, which swallowed a
            # Ctrl-C or SIGTERM and wrote an empty table: they take effect once it is done
            with stop_signals_held():
                super().finalize(allocations)

        def from_jobs(self, num_samples, jobs, work_fn, extra_args=()):
            """Write ``num_samples`` samples: ``work_fn`` runs the queued ``jobs``.

            ``work_fn(queue, metadata_sm, metadata_type, fields, allocator, done, allocations,
            *extra_args)`` follows FFCV's ``worker_job_indexed_dataset`` protocol.
            """
            self._write_common(num_samples, jobs, work_fn, tuple(extra_args))

    return InlineDatasetWriter(fname, fields, page_size=page_size, num_workers=1)


@contextlib.contextmanager
def allocating(allocator):
    """``with allocator:`` for a worker function (FFCV's ``MemoryAllocator``), except that a
    block that fails does not write its last page: that is wasted on a file thrown away, and
    after a Ctrl-C inside ``malloc`` (a page booked, nothing in it yet) FFCV's flush fails on
    its own assertion, whose traceback hid the Ctrl-C."""
    allocator.__enter__()
    try:
        yield allocator
    except BaseException:
        allocator.fp.close()
        raise
    allocator.__exit__(None, None, None)
