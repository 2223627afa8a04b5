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

``write_images`` uses the second stage too: its pool's processes spool the encoded images and
this process copies them in, in sample order (:class:`EncodedImages`), so the pages are the
same for any number of workers.
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
    """Append-only file of encoded images: :meth:`add` encodes a video's frame as JPEG and
    returns its record, :meth:`append` adds bytes encoded elsewhere. ``append=True`` goes on
    after what the file holds (an image reading process's spool, opened for each image)."""

    def __init__(self, path, quality=None, append=False):
        self.path, self.quality = path, quality
        try:
            self._file = open(path, 'ab' if append else 'wb')
        except OSError as err:
            raise cannot_write(path, err.strerror) from None
        self._offset = self._file.seek(0, os.SEEK_END)

    def add(self, rgb):
        """Encode ``rgb`` and append it: ``(offset, nbytes, height, width)``."""
        data = encode_jpeg(np.ascontiguousarray(rgb), self.quality)
        return (*self.append(data), int(rgb.shape[0]), int(rgb.shape[1]))

    def append(self, data):
        """Append the uint8 array ``data``: ``(offset, nbytes)``."""
        try:
            self._file.write(data.tobytes())
        except OSError as err:    # a full disk: one line (it crosses the process pool)
            raise cannot_write(self.path, err.strerror) from None
        offset = self._offset
        self._offset += data.nbytes
        return offset, int(data.nbytes)

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


def read_spooled(handle, path, offset, nbytes):
    """The ``nbytes`` bytes at ``offset`` of the spool file ``path`` (open as ``handle``), as a
    uint8 array; OSError if the file is shorter."""
    data = os.pread(handle, nbytes, offset)
    if len(data) != nbytes:
        raise OSError(f'spool file {path} is shorter than expected')
    return np.frombuffer(data, np.uint8)


# ---------------------------------------------------------------------------- the .beton

class Constant:
    """A field value shared by every sample (e.g. reserved, zero-filled arrays)."""

    def __init__(self, value):
        self.value = value


class EncodedImages:
    """One image per sample, in sample order, already encoded as FFCV's ``RGBImageField``
    stores it: an iterable of ``(mode, height, width, data)`` (``data``: uint8 array), read
    once, while writing. ``largest`` bounds ``len(data)``: it sizes the pages."""

    def __init__(self, images, largest):
        self.images, self.largest = images, largest


def write_spooled(path, fields, columns, spool_paths):
    """Write the samples to ``path`` with FFCV's DatasetWriter.

    ``fields`` maps names to FFCV fields (file order); ``columns`` maps the same names to the
    values: an ``IMAGE_REF`` array (spooled JPEGs, for ``RGBImageField``s), an
    :class:`EncodedImages`, a 1-D array (one value per sample) or a :class:`Constant`.
    ``spool_paths[i]`` is spool file ``i``. The arrays give the number of samples.
    """
    lengths = {len(c) for c in columns.values() if isinstance(c, np.ndarray)}
    if len(lengths) != 1:
        raise ValueError('columns must have one common length')
    num_samples = lengths.pop()
    largest = np.zeros(num_samples, np.int64)
    for column in columns.values():
        if isinstance(column, Constant):
            largest += np.asarray(column.value).nbytes
        elif isinstance(column, EncodedImages):
            largest += column.largest
        elif column.dtype == IMAGE_REF:
            largest += column['nbytes']
    writer = make_writer(path, fields, page_size_for(largest.max() + 4096))
    writer.from_jobs(num_samples, [(0, num_samples)], _write_samples,
                     ({name: columns[name] for name in fields}, list(spool_paths)))


def _write_samples(todo, metadata_sm, metadata_type, fields, allocator, done, allocations,
                   columns, spool_paths):
    """FFCV writer worker: fill samples ``[start, stop)`` of each queued job."""
    from ffcv.fields.rgb_image import IMAGE_MODES

    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    slots = list(zip(metadata_type.names, fields.values(), columns.values()))
    streams = {name: iter(column.images) for name, _, column in slots
               if isinstance(column, EncodedImages)}
    files = {}
    jpg = IMAGE_MODES['jpg']

    def spooled(ref):
        number = int(ref['spool'])
        if number not in files:
            files[number] = os.open(spool_paths[number], os.O_RDONLY)
        return jpg, ref['height'], ref['width'], read_spooled(
            files[number], spool_paths[number], int(ref['offset']), int(ref['nbytes']))

    def put_image(destination, image, malloc):
        mode, height, width, data = image
        destination['mode'] = mode
        destination['height'], destination['width'] = height, width
        destination['data_ptr'], storage = malloc(len(data))
        storage[:] = data

    try:
        with allocating(allocator):
            while True:
                job = todo.get()
                if job is None:
                    break
                start, stop = job
                for index in range(start, stop):
                    # taken once: a retry below must not take the next sample's image
                    images = {name: next(stream) for name, stream in streams.items()}
                    for attempt in range(2):      # as FFCV: retry once on a fresh page
                        try:
                            allocator.set_current_sample(index)
                            for name, field, column in slots:
                                destination = metadata[name][index:index + 1]
                                if name in images:
                                    put_image(destination, images[name], allocator.malloc)
                                elif isinstance(column, Constant):
                                    field.encode(destination, column.value, allocator.malloc)
                                elif column.dtype == IMAGE_REF:
                                    put_image(destination, spooled(column[index]),
                                              allocator.malloc)
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
