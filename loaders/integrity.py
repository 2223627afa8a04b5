"""Is a ``.beton`` whole? The cheap check every loader runs at open, and the complete one.

* :func:`check_size` (at open, two small reads): the file is as long as its header and
  allocation table say (``fastssl_common.beton_file``). A file cut short loses its allocation
  table first, and FFCV would open it anyway and decode some samples from the wrong bytes.
* :func:`verify` (``python -m loaders.verify FILE``, or ``data.verify=true`` in training):
  the size, then the SHA-256 of the whole file and of each page against what its writer
  recorded in the sidecar (``OUT.beton.json``, ``integrity``), then every sample: each
  allocation belongs to its sample and lies inside the data pages, each image decodes to the
  size its metadata states, each array has its declared size, and in a pairs file every
  ``num_proposals`` and valid proposal row keeps the contract ``inspect_pairs.py`` checks
  (:mod:`fastssl_common.proposals`). Sidecars written before hashes were recorded get the
  size and decode checks, and the summary says so; a sidecar recording another sample count
  or other fields is named as another file's, not as damage. Ctrl-C stops it within a few
  decodes.

Both raise :class:`fastssl_common.errors.UserError` (one line naming the file) on a mismatch.
"""
import collections
import concurrent.futures
import functools
import io
import os
import threading
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from fastssl_common.beton_file import (
    check_integrity_entry,
    check_layout,
    check_own_sidecar,
    check_size,
    file_digest,
    outside_data_pages,
    own_allocations,
    pointer_column,
)
from fastssl_common.errors import UserError, path_argument, require_file
from fastssl_common.formats import BOX_OF_FRAME, NUM_PROPOSALS, PROPOSALS, load_sidecar
from fastssl_common.progress import progress_bar
from fastssl_common.proposals import array_problem, first_bad_count, row_problem

__all__ = ['check_size', 'verify']

CHUNK = 64                    # samples per decode task


def require_dataset_file(path):
    """UserError naming ``path`` unless it is a regular file
    (:func:`fastssl_common.errors.not_a_file`)."""
    require_file(path, 'dataset file')


def verify(path, progress=True):
    """Check the ``.beton`` at ``path`` completely (see the module doc); returns a summary:
    ``path``, ``size``, ``samples``, ``fields``, ``sidecar`` (its path, or None), ``hashes``
    (what matched, or None when there was nothing to compare: ``note`` says why), ``pages``
    (pages hashed, or None) and ``decoded`` (images decoded). ``progress`` shows a bar
    (terminal) or lines."""
    path = path_argument(path, 'path')          # a pathlib.Path too
    require_dataset_file(path)
    layout = check_layout(path)
    if layout.size > layout.required:
        raise UserError(f'{path} has {layout.size - layout.required} bytes after its '
                        f'allocation table (appended to, or damaged)')
    summary = {'path': path, 'size': layout.size, 'samples': layout.num_samples,
               'fields': list(layout.field_names)}
    summary.update(_check_hashes(path, layout, progress))
    summary['decoded'] = _check_samples(path, layout, progress)
    return summary


# ---------------------------------------------------------------------------- hashes

def _check_hashes(path, layout, progress):
    """The sidecar's size and hashes against the file: ``{sidecar, hashes, pages}``."""
    sidecar, metadata = load_sidecar(path)
    if metadata is None:
        return {'sidecar': None, 'hashes': None, 'pages': None,
                'note': f'no sidecar {sidecar}'}
    recorded = metadata.get('integrity')
    check_integrity_entry(recorded, sidecar)
    # another file's hashes differ too, but would name pages as if they were damaged
    check_own_sidecar(path, layout, metadata, sidecar)
    if recorded is None:
        return {'sidecar': sidecar, 'hashes': None, 'pages': None,
                'note': f'the sidecar {sidecar} was written before the writers recorded '
                        f'hashes'}
    if recorded['size'] != layout.size:
        raise UserError(f"{path} is {layout.size} bytes, its sidecar {sidecar} records "
                        f"{recorded['size']}")
    with progress_bar(total=layout.size, desc='hashing', unit='B', unit_scale=True,
                      enabled=progress) as bar:
        digest = file_digest(path, recorded['page_size'], bar.update)
    pages = recorded['page_sha256']
    bad = [k for k, (got, want) in enumerate(zip(digest['page_sha256'], pages)) if got != want]
    if bad or len(pages) != len(digest['page_sha256']):
        first = bad[0] if bad else min(len(pages), len(digest['page_sha256']))
        start = first * recorded['page_size']
        # damage hits a few pages; another file of the same size differs in all of them
        other = ('; every page: the sidecar of another file, copied or left beside it?'
                 if len(bad) == len(pages) > 1 else '')
        raise UserError(f'{path}: page {first} (bytes {start}..{start + recorded["page_size"]}) '
                        f'differs from the hash its sidecar records ({len(bad)} of '
                        f'{len(pages)} pages differ{other})')
    if digest['sha256'] != recorded['sha256']:
        raise UserError(f'{path}: its SHA-256 differs from the one its sidecar {sidecar} '
                        f'records')
    return {'sidecar': sidecar, 'pages': len(pages), 'note': None,
            'hashes': f'size, SHA-256 and {len(pages)} page hashes match the sidecar'}


# ---------------------------------------------------------------------------- samples

def _check_samples(path, layout, progress):
    """Every sample's allocations and decodes (see the module doc); images decoded."""
    from ffcv.types import ALLOC_TABLE_TYPE, get_metadata_type

    metadata = np.fromfile(path, get_metadata_type(list(layout.handlers)),
                           count=layout.num_samples, offset=layout.metadata_start)
    table = np.fromfile(path, ALLOC_TABLE_TYPE, offset=layout.alloc_table_ptr)
    table = table[np.argsort(table['ptr'], kind='stable')]
    outside = outside_data_pages(layout, table['ptr'], table['size'])
    if outside.any():
        row = table[np.flatnonzero(outside)[0]]
        raise UserError(f"{path}: sample {row['sample_id']}'s data lies outside the data pages "
                        f"(damaged allocation table)")
    sizes = {}
    for i in layout.pointer_fields:
        column = metadata[f'f{i}']
        name = pointer_column(layout.handlers[i])
        pointers = column[name] if name else column
        at, found = own_allocations(table, pointers)
        if not found.all():
            sample = int(np.flatnonzero(~found)[0])
            raise UserError(f"{path}: sample {sample}'s '{layout.field_names[i]}' points at no "
                            f"allocation of its own (damaged metadata or allocation table)")
        sizes[i] = table['size'][at]
    counts = _proposal_counts(path, layout, metadata)
    data = np.memmap(path, np.uint8, mode='r')
    workers = os.cpu_count() or 1
    halt = threading.Event()
    check = functools.partial(_check_chunk, data, layout, metadata, sizes, counts, halt)
    decoded = 0
    # PIL releases the GIL while it decodes: threads share the work
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        with progress_bar(total=layout.num_samples, desc='decoding', unit='sample',
                          enabled=progress) as bar:
            for problem, images, count in _bounded_map(
                    pool, check, range(0, layout.num_samples, CHUNK), 2 * workers):
                if problem:
                    raise UserError(f'{path}: {problem}')
                decoded += images
                bar.update(count)
    finally:        # a problem, Ctrl-C: the chunks running stop at their next sample
        halt.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return decoded


def _bounded_map(pool, function, items, ahead):
    """``function(item)`` for each item on ``pool``, results in order, with at most ``ahead``
    submitted and not yet taken: what is queued is what Ctrl-C or a problem must wait for
    or cancel (a 12,000-sample file queued whole took 11 s to stop)."""
    tasks = collections.deque()
    for item in items:
        tasks.append(pool.submit(function, item))
        if len(tasks) >= ahead:
            yield tasks.popleft().result()
    while tasks:
        yield tasks.popleft().result()


def _proposal_counts(path, layout, metadata):
    """Each sample's ``num_proposals`` in a pairs file with proposal fields, once they and the
    ``proposals`` array are checked (:mod:`fastssl_common.proposals`); None for other files."""
    names = layout.field_names
    if not {PROPOSALS, NUM_PROPOSALS, *BOX_OF_FRAME} <= set(names):
        return None
    handler = layout.handlers[names.index(PROPOSALS)]
    problem = array_problem(handler.dtype, handler.shape)
    if problem:
        raise UserError(f"{path}: field '{PROPOSALS}' {problem}")
    counts = metadata[f'f{names.index(NUM_PROPOSALS)}']
    bad = first_bad_count(counts, int(handler.shape[0]))
    if bad:
        sample, why = bad
        raise UserError(f"{path}: sample {sample}'s '{NUM_PROPOSALS}' {why}")
    return counts


def _check_chunk(data, layout, metadata, sizes, counts, halt, start):
    """Decode the ``CHUNK`` samples from ``start`` and check their valid proposal rows
    (``counts``: see :func:`_proposal_counts`): ``(first problem or None, images decoded,
    count)``; stops early once ``halt`` is set."""
    from ffcv.fields import NDArrayField, RGBImageField
    from ffcv.fields.rgb_image import IMAGE_MODES

    images = 0
    stop = min(start + CHUNK, layout.num_samples)
    for index in range(start, stop):
        if halt.is_set():
            return None, images, index - start
        for i in layout.pointer_fields:
            handler, name = layout.handlers[i], layout.field_names[i]
            meta = metadata[f'f{i}'][index]
            size = int(sizes[i][index])
            pointer = int(meta['data_ptr'] if isinstance(handler, RGBImageField) else
                          meta['ptr'] if pointer_column(handler) == 'ptr' else meta)
            where = f"sample {index}'s '{name}'"
            if isinstance(handler, RGBImageField):
                height, width = int(meta['height']), int(meta['width'])
                mode = int(meta['mode'])
                if mode not in IMAGE_MODES.values():    # the loaders would read it as raw
                    return (f'{where} has storage mode {mode}, neither jpg nor raw'), \
                        images, index - start
                if mode == IMAGE_MODES['raw']:
                    if size != height * width * 3:
                        return (f'{where} holds {size} bytes, not the {height}x{width} '
                                f'RGB pixels its metadata states'), images, index - start
                else:
                    problem = _jpeg_problem(data[pointer:pointer + size], width, height)
                    if problem:
                        return f'{where} does not decode ({problem})', images, index - start
                images += 1
            elif isinstance(handler, NDArrayField) and size != handler.element_size:
                return (f'{where} holds {size} bytes, not the {handler.element_size} of its '
                        f'declared array'), images, index - start
            elif counts is not None and name == PROPOSALS:
                problem = _rows_problem(data[pointer:pointer + size], layout, metadata,
                                        index, int(counts[index]))
                if problem:
                    return f'{where} {problem}', images, index - start
            elif not isinstance(handler, NDArrayField) and size != int(meta['size']):
                return (f"{where} holds {size} bytes, not the {int(meta['size'])} its "
                        f'metadata states'), images, index - start
    return None, images, stop - start


def _rows_problem(stored, layout, metadata, index, count):
    """Why one of the first ``count`` rows of sample ``index``'s proposals (``stored``, its
    whole array) breaks the contract, or None."""
    names = layout.field_names
    handler = layout.handlers[names.index(PROPOSALS)]
    rows = np.frombuffer(stored, handler.dtype).reshape(tuple(map(int, handler.shape)))
    frame_sizes = {}
    for name in BOX_OF_FRAME:
        meta = metadata[f'f{names.index(name)}'][index]
        frame_sizes[name] = (int(meta['width']), int(meta['height']))
    return row_problem(rows[:count], frame_sizes)


def _jpeg_problem(encoded, width, height):
    """Why the JPEG bytes ``encoded`` do not decode to ``width x height``, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(io.BytesIO(encoded.tobytes())) as image:
                image.load()
                size = image.size
    except UnidentifiedImageError:
        return 'not an image'
    except Exception as err:  # Pillow's reasons for a broken stream are varied; all mean bad
        return ' '.join(str(err).split()) or type(err).__name__
    if size != (width, height):
        return f'{size[0]}x{size[1]}, its metadata states {width}x{height}'
    return None
