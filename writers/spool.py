"""JPEG spool files: frames encoded once while videos are read, then copied into a .beton.

The video writers write in two stages so that every frame is decoded once and JPEG-encoded
once:

1. Per-video tasks (:func:`writers.video_common.run_per_video`) convert the frames they keep
   to RGB, encode them to JPEG exactly as FFCV's ``RGBImageField`` does (OpenCV, BGR order,
   the given quality) and append the bytes to a per-video **spool** file (:class:`Spool`) in a
   temporary folder next to the output (:func:`spool_folder`, removed whatever happens; one
   left by a writer killed outright is removed by the next run into that folder).
2. :func:`write_spooled` writes the samples with the real FFCV ``DatasetWriter`` (through
   :func:`writers.writer_common.make_writer`). Image fields are filled from the spooled JPEG
   bytes, with the metadata FFCV's ``RGBImageField.encode`` writes for ``write_mode='jpg'``
   (mode, height, width, data pointer), so a frame used by two samples is copied, not
   re-encoded. Other fields go through their FFCV ``encode``.
"""
import contextlib
import os
import shutil

import cv2
import numpy as np

from fastssl_common.atomic import (
    cannot_write,
    output_folder,
    owned_name,
    remove_stale,
    stop_signals_held,
)
from writers.writer_common import allocating, make_writer, page_size_for

# Where a sample's image lives in the spool: file number, byte range, stored size.
IMAGE_REF = np.dtype([('spool', '<i4'), ('offset', '<i8'), ('nbytes', '<i8'),
                      ('height', '<i4'), ('width', '<i4')])


def encode_jpeg(rgb, quality):
    """JPEG bytes of an RGB frame, encoded as FFCV's ``RGBImageField(write_mode='jpg')``."""
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError('OpenCV could not encode a frame as JPEG')
    return data


class Spool:
    """Append-only file of JPEG frames of one video; :meth:`add` returns the frame's record."""

    def __init__(self, path, quality):
        self.path, self.quality = path, quality
        try:
            self._file = open(path, 'wb')
        except OSError as err:
            raise cannot_write(path, err.strerror) from None
        self._offset = 0

    def add(self, rgb):
        """Encode ``rgb`` and append it: ``(offset, nbytes, height, width)``."""
        data = encode_jpeg(np.ascontiguousarray(rgb), self.quality)
        try:
            self._file.write(data.tobytes())
        except OSError as err:    # a full disk: one line (it crosses the process pool)
            raise cannot_write(self.path, err.strerror) from None
        record = (self._offset, int(data.nbytes), int(rgb.shape[0]), int(rgb.shape[1]))
        self._offset += data.nbytes
        return record

    def close(self):
        try:
            self._file.close()
        except OSError as err:    # the last buffered bytes did not fit
            raise cannot_write(self.path, err.strerror) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def spool_folder(out):
    """A temporary folder next to ``out`` (same disk) that is always removed afterwards,
    named after its owner (``.OUT.spool-HOST-PID``): spool folders that writers killed
    outright left in that folder are removed first (``fastssl_common.atomic.remove_stale``).

    Output folders it had to create are removed again if the block fails.
    """
    folder = os.path.dirname(os.path.abspath(out))
    with output_folder(folder):
        remove_stale(folder, 'spool')
        path = owned_name(out, 'spool')
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise cannot_write(path, err.strerror) from None
        try:
            yield path
        finally:
            with stop_signals_held():
                shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------- the .beton

class Constant:
    """A field value shared by every sample (e.g. reserved, zero-filled arrays)."""

    def __init__(self, value):
        self.value = value


def write_spooled(path, fields, columns, spool_paths, progress, unit='sample'):
    """Write ``len(columns[...])`` samples to ``path`` with FFCV's DatasetWriter.

    ``fields`` maps names to FFCV fields (file order); ``columns`` maps the same names to the
    values: an ``IMAGE_REF`` array (spooled JPEGs, for ``RGBImageField``s), a 1-D array (one
    value per sample) or a :class:`Constant`. ``spool_paths[i]`` is spool file ``i``.
    """
    lengths = {len(c) for c in columns.values() if not isinstance(c, Constant)}
    if len(lengths) != 1:
        raise ValueError('columns must have one common length')
    num_samples = lengths.pop()
    largest = np.zeros(num_samples, np.int64)
    for column in columns.values():
        if isinstance(column, Constant):
            largest += np.asarray(column.value).nbytes
        elif column.dtype == IMAGE_REF:
            largest += column['nbytes']
    # The samples are already-encoded JPEG bytes: writing them is a copy, cheaper than
    # starting writer processes (≈ 0.3 s here), so one worker runs in this process.
    writer = make_writer(path, fields, page_size_for(largest.max() + 4096), 1, progress,
                         unit=unit)
    writer.from_jobs(num_samples, [(0, num_samples)], _write_samples,
                     ({name: columns[name] for name in fields}, list(spool_paths)),
                     inline=True)


def _write_samples(todo, metadata_sm, metadata_type, fields, allocator, done, allocations,
                   columns, spool_paths):
    """FFCV writer worker: fill samples ``[start, stop)`` of each queued job."""
    from ffcv.fields.rgb_image import IMAGE_MODES

    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    slots = list(zip(metadata_type.names, fields.values(), columns.values()))
    files = {}
    jpg = IMAGE_MODES['jpg']

    def put_image(destination, ref, malloc):
        number = int(ref['spool'])
        if number not in files:
            files[number] = os.open(spool_paths[number], os.O_RDONLY)
        data = os.pread(files[number], int(ref['nbytes']), int(ref['offset']))
        if len(data) != ref['nbytes']:
            raise OSError(f'spool file {spool_paths[number]} is shorter than expected')
        destination['mode'] = jpg
        destination['height'], destination['width'] = ref['height'], ref['width']
        destination['data_ptr'], storage = malloc(len(data))
        storage[:] = np.frombuffer(data, np.uint8)

    try:
        with allocating(allocator):
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
