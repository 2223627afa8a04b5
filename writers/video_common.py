"""Machinery shared by the two video writers (frames and frame pairs).

Writing happens in two stages so that every frame is decoded once and JPEG-encoded once:

1. :func:`run_per_video` runs a function over the videos in a process pool (one video per
   task, decoded sequentially). It converts the frames it keeps to RGB, encodes them to JPEG
   exactly as FFCV's ``RGBImageField`` does (OpenCV, BGR order, the given quality) and appends
   the bytes to a per-video **spool** file in a temporary folder next to the output
   (:class:`Spool`). A shared counter drives one progress bar over decoded frames.
2. :func:`write_spooled` writes the samples with the real FFCV ``DatasetWriter`` (through
   :func:`writers.writer_common.make_writer`). Image fields are filled from the spooled JPEG
   bytes, with the metadata FFCV's ``RGBImageField.encode`` writes for ``write_mode='jpg'``
   (mode, height, width, data pointer), so a frame used by two samples is copied, not
   re-encoded. Other fields go through their FFCV ``encode``.

The spool folder is removed whatever happens (:func:`spool_folder`).
"""
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import shutil
import tempfile

import cv2
import numpy as np
from tqdm import tqdm

from fastssl_common.atomic import ensure_writable_dir
from fastssl_common.errors import UserError
from writers.writer_common import bar_disabled, make_writer

# Where a sample's image lives in the spool: file number, byte range, stored size.
IMAGE_REF = np.dtype([("spool", "<i4"), ("offset", "<i8"), ("nbytes", "<i8"),
                      ("height", "<i4"), ("width", "<i4")])
_COUNTERS = None            # (frames decoded, frames expected) in pool workers
_COUNT_EVERY = 8            # frames between updates of the shared counter


def encode_jpeg(rgb, quality):
    """JPEG bytes of an RGB frame, encoded as FFCV's ``RGBImageField(write_mode='jpg')``."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode a frame as JPEG")
    return data


class Spool:
    """Append-only file of JPEG frames of one video; :meth:`add` returns the frame's record."""

    def __init__(self, path, quality):
        self.path, self.quality = path, quality
        self._file = open(path, "wb")
        self._offset = 0

    def add(self, rgb):
        """Encode ``rgb`` and append it: ``(offset, nbytes, height, width)``."""
        data = encode_jpeg(np.ascontiguousarray(rgb), self.quality)
        self._file.write(data.tobytes())
        record = (self._offset, int(data.nbytes), int(rgb.shape[0]), int(rgb.shape[1]))
        self._offset += data.nbytes
        return record

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def spool_folder(out):
    """A temporary folder next to ``out`` (same disk) that is always removed afterwards.

    Output folders it had to create are removed again if the block fails.
    """
    folder = os.path.dirname(os.path.abspath(out))
    created = folder
    while not os.path.exists(os.path.dirname(created)):
        created = os.path.dirname(created)
    created = None if os.path.exists(folder) else created
    ensure_writable_dir(folder)
    path = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.spool-", dir=folder)
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        if created is not None:
            _remove_empty_folders(folder, created)
        raise
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_empty_folders(folder, top):
    """Remove ``folder`` and its parents up to ``top`` while they are empty."""
    while True:
        try:
            os.rmdir(folder)
        except OSError:
            return
        if folder == top:
            return
        folder = os.path.dirname(folder)


# ---------------------------------------------------------------------------- stage 1

class FrameCounter:
    """Progress reporting from inside a per-video task (any process)."""

    def __init__(self):
        self._pending = 0

    @staticmethod
    def expect(frames):
        """Add ``frames`` (may be negative: a correction) to the expected total."""
        if _COUNTERS is not None and frames:
            with _COUNTERS[1].get_lock():
                _COUNTERS[1].value += int(frames)

    def count(self, frames=1):
        """Record ``frames`` more decoded frames (published every few frames)."""
        self._pending += frames
        if self._pending >= _COUNT_EVERY:
            self.flush()

    def flush(self):
        if _COUNTERS is not None and self._pending:
            with _COUNTERS[0].get_lock():
                _COUNTERS[0].value += self._pending
        self._pending = 0


def _init_worker(counters):
    global _COUNTERS
    _COUNTERS = counters
    cv2.setNumThreads(1)       # one video per process; OpenCV threads would only compete


def run_per_video(function, jobs, workers, progress, desc="reading videos"):
    """``[function(job) for job in jobs]``, over ``workers`` processes, with a frame bar.

    ``function`` reports progress through :class:`FrameCounter`. A worker that dies raises
    UserError; an exception in ``function`` propagates (it is a bug: expected problems are
    returned in the result).
    """
    global _COUNTERS
    counters = (multiprocessing.Value(ctypes.c_int64, 0), multiprocessing.Value(ctypes.c_int64, 0))
    results = [None] * len(jobs)
    with tqdm(total=0, unit="frame", desc=desc, disable=bar_disabled(progress)) as bar:
        def refresh():
            done, expected = counters[0].value, counters[1].value
            if expected != bar.total:
                bar.total = max(expected, done)
                bar.refresh()
            bar.update(done - bar.n)

        if workers <= 1 or len(jobs) <= 1:
            saved, _COUNTERS = _COUNTERS, counters
            try:
                for i, job in enumerate(jobs):
                    results[i] = function(job)
                    refresh()
            finally:
                _COUNTERS = saved
            return results
        executor = concurrent.futures.ProcessPoolExecutor(
            min(workers, len(jobs)), initializer=_init_worker, initargs=(counters,))
        # OpenCV's thread pool does not survive fork: a worker forked while this process
        # has pool threads parked can hang for ever in cv2.setNumThreads (_init_worker).
        # With one thread there is no pool; the fork context starts every worker at the
        # first submit, so the setting is restored right after.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            try:
                futures = {executor.submit(function, job): i for i, job in enumerate(jobs)}
            finally:
                cv2.setNumThreads(threads)
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.1, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    try:
                        results[futures[future]] = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        raise UserError("a video reading process died (out of memory?); "
                                        "nothing was written") from None
                refresh()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return results


def reading_warnings(reader, source):
    """What went wrong while reading one video, short of failing: lines for the summary."""
    warnings = []
    if reader.error:
        warnings.append(f"{reader.error}; kept the frames before it")
    for index, reason in reader.bad_frames:
        warnings.append(f"skipped unreadable frame {index}: {reason}")
    if source.kind == "frames" and source.missing:
        warnings.append(f"{source.missing} frame numbers missing (gaps in the numbering)")
    return warnings


def decoder_threads(workers, videos):
    """FFmpeg threads per decoder: the CPUs shared among the videos decoded at once."""
    from writers.writer_common import default_workers

    return max(1, default_workers() // max(1, min(workers, videos)))


# ---------------------------------------------------------------------------- stage 2

class Constant:
    """A field value shared by every sample (e.g. reserved, zero-filled arrays)."""

    def __init__(self, value):
        self.value = value


def page_size_for(largest_sample_bytes):
    """A power-of-two FFCV page that holds the largest sample with room to spare."""
    return max(8 << 20, 1 << (2 * int(largest_sample_bytes) + (1 << 20) - 1).bit_length())


def write_spooled(path, fields, columns, spool_paths, progress, unit="sample"):
    """Write ``len(columns[...])`` samples to ``path`` with FFCV's DatasetWriter.

    ``fields`` maps names to FFCV fields (file order); ``columns`` maps the same names to the
    values: an ``IMAGE_REF`` array (spooled JPEGs, for ``RGBImageField``s), a 1-D array (one
    value per sample) or a :class:`Constant`. ``spool_paths[i]`` is spool file ``i``.
    """
    lengths = {len(c) for c in columns.values() if not isinstance(c, Constant)}
    if len(lengths) != 1:
        raise ValueError("columns must have one common length")
    num_samples = lengths.pop()
    largest = np.zeros(num_samples, np.int64)
    for column in columns.values():
        if isinstance(column, Constant):
            largest += np.asarray(column.value).nbytes
        elif column.dtype == IMAGE_REF:
            largest += column["nbytes"]
    # The samples are already-encoded JPEG bytes: writing them is a copy, cheaper than
    # starting writer processes (≈ 0.3 s here), so one worker runs in this process.
    writer = make_writer(path, fields, page_size_for(largest.max() + 4096), 1, progress,
                         unit=unit)
    try:
        writer.from_jobs(num_samples, [(0, num_samples)], _write_samples,
                         ({name: columns[name] for name in fields}, list(spool_paths)),
                         inline=True)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None


def _write_samples(todo, metadata_sm, metadata_type, fields, allocator, done, allocations,
                   columns, spool_paths):
    """FFCV writer worker: fill samples ``[start, stop)`` of each queued job."""
    from ffcv.fields.rgb_image import IMAGE_MODES

    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    slots = list(zip(metadata_type.names, fields.values(), columns.values()))
    files = {}
    jpg = IMAGE_MODES["jpg"]

    def put_image(destination, ref, malloc):
        number = int(ref["spool"])
        if number not in files:
            files[number] = os.open(spool_paths[number], os.O_RDONLY)
        data = os.pread(files[number], int(ref["nbytes"]), int(ref["offset"]))
        if len(data) != ref["nbytes"]:
            raise OSError(f"spool file {spool_paths[number]} is shorter than expected")
        destination["mode"] = jpg
        destination["height"], destination["width"] = ref["height"], ref["width"]
        destination["data_ptr"], storage = malloc(len(data))
        storage[:] = np.frombuffer(data, np.uint8)

    try:
        with allocator:
            while True:
                job = todo.get()
                if job is None:
                    break
                start, stop = job
                for index in range(start, stop):
                    for attempt in range(2):      # as FFCV: retry once on a fresh page
                        try:
                            allocator.set_current_sample(index)
                            for name, field, column in slots:
                                destination = metadata[name][index:index + 1]
                                if isinstance(column, Constant):
                                    field.encode(destination, column.value, allocator.malloc)
                                elif column.dtype == IMAGE_REF:
                                    put_image(destination, column[index], allocator.malloc)
                                else:
                                    field.encode(destination, column[index], allocator.malloc)
                            break
                        except MemoryError:
                            if attempt == 1:
                                raise
                with done.get_lock():
                    done.value += stop - start
        allocations.put(allocator.allocations)
    finally:
        for handle in files.values():
            os.close(handle)
