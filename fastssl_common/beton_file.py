"""What a ``.beton`` must hold, from its own header, and its content digest.

FFCV 1.0.2's layout (``ffcv/types.py``, ``ffcv/writer.py``, ``ffcv/memory_allocator.py``):

1. a header (``HeaderType``: version, num_fields, page_size, num_samples, alloc_table_ptr);
2. ``num_fields`` field descriptors (``FieldDescType``);
3. ``num_samples`` metadata rows, one per sample, the fields' metadata side by side;
4. the data pages, ``page_size`` bytes each, from the first page boundary after the metadata;
5. the allocation table (``ALLOC_TABLE_TYPE``: sample_id, ptr, size), written last, at
   ``alloc_table_ptr``.

Every field that keeps its data outside the metadata row (images, arrays, bytes, JSON)
allocates exactly once per sample (FFCV undoes the allocations of a sample it retries on a
fresh page), so the table has ``num_samples`` rows per such field and the file must hold at
least ``alloc_table_ptr + rows * 24`` bytes: :func:`required_size` works that out from the
header and the field descriptors alone (two small reads), :func:`check_size` compares it with
the file. A file cut short loses its table first; FFCV itself would open it and read wrong
samples.

:func:`file_digest` is what the writers record in the sidecar (``integrity``) and what
``python -m loaders.verify`` checks against it: the size, the SHA-256 of the whole file and of
every ``page_size`` chunk (so a damaged region can be named). :func:`tables_digest` names a
dataset cheaply (a training checkpoint records it, so that a resume finds other data).
"""
import concurrent.futures
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from .atomic import stop_signals_held
from .errors import UserError
from .formats import KINDS
from .numbers import is_number

HASH_CHUNK = 8 << 20        # bytes read at a time while hashing


def not_a_beton(path, why):
    """The one-line error for a file that is not a readable ``.beton``."""
    return UserError(f'{path} is not a readable .beton file ({why})')


def truncated(path, size, needed):
    """The one-line error for a ``.beton`` cut short."""
    return UserError(f'{path} is truncated: {size} bytes, needs at least {needed}')


@dataclass(frozen=True)
class Layout:
    """Where a ``.beton``'s parts lie (bytes), from its header and field descriptors."""
    size: int                 # the file's size now
    num_samples: int
    page_size: int
    field_names: tuple
    handlers: tuple           # FFCV field handlers, in file order
    metadata_start: int
    metadata_end: int
    alloc_table_ptr: int
    pointer_fields: tuple     # indices of the fields with one allocation per sample
    required: int             # the least size that holds every part

    @property
    def data_start(self):
        """Where the data pages begin: the first page boundary after the metadata rows."""
        return -(-self.metadata_end // self.page_size) * self.page_size


def outside_data_pages(layout, pointers, sizes):
    """True for each allocation (``pointers[i]``, ``sizes[i]`` bytes) that does not lie in the
    data pages, ``[layout.data_start, layout.alloc_table_ptr)``. Sizes are unsigned: compared
    with the room left, so that a huge one cannot wrap ``pointer + size`` round."""
    first, end = layout.data_start, layout.alloc_table_ptr
    pointers, sizes = np.asarray(pointers, np.uint64), np.asarray(sizes, np.uint64)
    room = np.uint64(end) - np.minimum(pointers, np.uint64(end))
    return (pointers < first) | (pointers > end) | (sizes > room)


def own_allocations(table, pointers):
    """Where each sample's data pointer ``pointers[i]`` lies in the allocation table
    ``table`` (FFCV's ``ALLOC_TABLE_TYPE`` rows sorted by ``ptr``): ``(rows, own)``, the row of
    the allocation that starts at or after it, and whether that allocation starts there and is
    sample ``i``'s own (FFCV reads a sample's data with the size of that row)."""
    pointers = np.asarray(pointers, np.uint64)
    if not len(table):
        return np.zeros(len(pointers), np.int64), np.zeros(len(pointers), bool)
    rows = np.minimum(np.searchsorted(table['ptr'], pointers), len(table) - 1)
    samples = np.arange(len(pointers), dtype=np.uint64)
    return rows, (table['ptr'][rows] == pointers) & (table['sample_id'][rows] == samples)


def pointer_column(handler):
    """How a field's metadata points at its data: a column name, '' (the metadata value is
    the pointer), or None (the field keeps its value in the metadata row)."""
    from ffcv.fields import BytesField, NDArrayField, RGBImageField

    if isinstance(handler, RGBImageField):
        return 'data_ptr'
    if isinstance(handler, BytesField):      # JSONField too
        return 'ptr'
    if isinstance(handler, NDArrayField):    # TorchTensorField too
        return ''
    return None


def required_size(path):
    """The :class:`Layout` of the ``.beton`` at ``path``; UserError if it is not one."""
    # a Ctrl-C inside torch's import (FFCV's) would break every later import of it in this
    # interpreter (a notebook's kernel): it waits until the import is done
    with stop_signals_held():
        from ffcv.types import CURRENT_VERSION, FieldDescType, HeaderType, get_handlers
        from ffcv.utils import decode_null_terminated_string

    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as handle:
            head = handle.read(HeaderType.itemsize)
            if len(head) >= 2:
                version = int(np.frombuffer(head[:2], '<u2')[0])
                if version != CURRENT_VERSION:
                    # FFCV has had versions 1 and 2: a larger number is another kind of file
                    # ('he' of a text file reads as version 25960)
                    raise not_a_beton(path, f'format version {version}, FFCV reads '
                                            f'{CURRENT_VERSION}' if version < 16 else
                                            'it does not begin with an FFCV header')
            if len(head) < HeaderType.itemsize:
                raise truncated(path, size, HeaderType.itemsize)
            header = np.frombuffer(head, HeaderType)[0]
            num_fields, num_samples = int(header['num_fields']), int(header['num_samples'])
            page_size = int(header['page_size'])
            if page_size <= 0 or page_size & (page_size - 1):    # FFCV's are powers of 2
                raise not_a_beton(path, f'damaged header: page size {page_size}')
            descriptors_end = HeaderType.itemsize + num_fields * FieldDescType.itemsize
            if size < descriptors_end:
                raise truncated(path, size, descriptors_end)
            descriptors = np.frombuffer(handle.read(num_fields * FieldDescType.itemsize),
                                        FieldDescType)
    except OSError as err:       # unreadable (permissions, an I/O error)
        raise UserError(f'cannot read {path}: {err.strerror}') from None
    try:
        handlers = get_handlers(descriptors)
        names = tuple(decode_null_terminated_string(d['name']) for d in descriptors)
    except KeyError as err:
        raise not_a_beton(path, f'unknown field type {err}') from None
    except ValueError:      # a field's name or settings that do not decode (JSON, ASCII)
        raise not_a_beton(path, 'damaged field table') from None
    if any(handler is None for handler in handlers):
        raise not_a_beton(path, 'it has custom fields this project does not know')
    row = np.dtype([('', h.metadata_type) for h in handlers], align=True).itemsize
    metadata_end = descriptors_end + num_samples * row
    pointers = tuple(i for i, h in enumerate(handlers) if pointer_column(h) is not None)
    table = int(header['alloc_table_ptr'])
    if table < metadata_end:
        # FFCV writes the table's place last: 0 means its writer never finished
        raise not_a_beton(path, 'its writer did not finish: no allocation table')
    from ffcv.types import ALLOC_TABLE_TYPE

    required = table + num_samples * len(pointers) * ALLOC_TABLE_TYPE.itemsize
    return Layout(size, num_samples, page_size, names, tuple(handlers),
                  descriptors_end, metadata_end, table, pointers, required)


def check_size(path):
    """None if the ``.beton`` at ``path`` is as long as its header and allocation table say;
    else UserError: ``PATH is truncated: N bytes, needs at least M`` (or not a ``.beton``).
    Returns nothing; costs two small reads."""
    check_layout(path)


def check_layout(path):
    """:func:`check_size`, returning the file's :class:`Layout`."""
    layout = required_size(path)
    if layout.size < layout.required:
        raise truncated(path, layout.size, layout.required)
    return layout


def sidecar_mismatch(path, layout, sidecar, sidecar_file):
    """How the sidecar dict ``sidecar`` (read from ``sidecar_file``) records another file than
    the ``.beton`` at ``path`` (its :class:`Layout`): its sample count, field names or kind
    (``format``: a kind whose fields the file does not have) differ (what it does not record
    is not compared). One phrase naming both, or None."""
    count, fields, kind = sidecar.get('num_samples'), sidecar.get('fields'), \
        KINDS.get(sidecar.get('format'))
    if isinstance(count, int) and count != layout.num_samples:
        return (f'{path} holds {layout.num_samples} samples, its sidecar {sidecar_file} '
                f'records {count}')
    if isinstance(fields, (dict, list)) and list(fields) != list(layout.field_names):
        return (f"{path} has the fields ({', '.join(layout.field_names)}), its sidecar "
                f"{sidecar_file} records ({', '.join(map(str, fields))})")
    names = layout.field_names
    if kind is not None and not (set(kind.required) <= set(names) <= set(kind.names)):
        return (f"{path} has the fields ({', '.join(names)}), its sidecar {sidecar_file} "
                f"records a {kind.sidecar} file ({', '.join(kind.required)})")
    return None


def check_own_sidecar(path, layout, sidecar, sidecar_file):
    """UserError when the sidecar is no writer's (no ``format`` of a ``.beton`` kind, a
    ``num_samples`` or ``fields`` of the wrong type: edited, or another program's) or records
    another file (:func:`sidecar_mismatch`): a copy, or one left beside this file, whose
    entries would be taken for this file's."""
    kind = sidecar.get('format')
    if kind not in KINDS:
        raise UserError(f"sidecar {sidecar_file} is not a fastssl writer's sidecar (its "
                        f"'format' is {kind!r}, not one of {', '.join(KINDS)}; damaged or "
                        f"edited?)")
    count, fields = sidecar.get('num_samples', 0), sidecar.get('fields', [])
    for key, fits in (('num_samples', is_number(count, integer=True) and count >= 0),
                      ('fields', isinstance(fields, (dict, list)))):
        if not fits:
            raise UserError(f'sidecar {sidecar_file}: invalid {key!r} (damaged or edited?)')
    mismatch = sidecar_mismatch(path, layout, sidecar, sidecar_file)
    if mismatch:
        raise UserError(f'{mismatch} (the sidecar of another file, copied or left beside it?)')


def check_integrity_entry(integrity, sidecar_path):
    """UserError unless a sidecar's ``integrity`` entry (None: written before the hashes) has
    the shape :func:`file_digest` gives, naming the first entry that does not."""
    if integrity is None:
        return
    whole = isinstance(integrity, dict)
    shapes = {
        'size': lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        'sha256': lambda v: isinstance(v, str),
        'page_size': lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        'page_sha256': lambda v: isinstance(v, list) and all(isinstance(h, str) for h in v),
    }
    for key, fits in shapes.items():
        if not (whole and fits(integrity.get(key))):
            name = 'integrity' if not whole else f'integrity.{key}'
            raise UserError(f'sidecar {sidecar_path}: missing or invalid {name!r} (damaged '
                            f'or edited?)')
    pages = -(-integrity['size'] // integrity['page_size'])
    if len(integrity['page_sha256']) != pages:
        raise UserError(f"sidecar {sidecar_path}: 'integrity.page_sha256' holds "
                        f"{len(integrity['page_sha256'])} hashes where its size and page size "
                        f"make {pages} pages (damaged or edited?)")


def tables_digest(path):
    """SHA-256 of the ``.beton`` at ``path`` without its data pages: the header, the field
    descriptors, the metadata rows and the allocation table. Any copy of a file gives the
    same; another dataset does not (its sample count, image sizes, labels or data offsets
    differ), and it costs a read of the tables only. UserError if the file is no ``.beton``."""
    layout = check_layout(path)
    digest = hashlib.sha256()
    try:
        with open(path, 'rb', buffering=0) as handle:
            for start, end in ((0, layout.metadata_end), (layout.alloc_table_ptr,
                                                          layout.required)):
                handle.seek(start)
                while start < end:
                    data = handle.read(min(HASH_CHUNK, end - start))
                    if not data:
                        raise truncated(path, layout.size, end)
                    digest.update(data)
                    start += len(data)
    except OSError as err:
        raise UserError(f'cannot read {path}: {err.strerror}') from None
    return digest.hexdigest()


def file_sha256(path):
    """The SHA-256 of the whole file at ``path``."""
    return file_digest(path, max(1, os.path.getsize(path)))['sha256']


def file_digest(path, page_size, advance=None):
    """``{size, sha256, page_size, page_sha256}`` of the file at ``path``: the SHA-256 of the
    whole file and of each ``page_size`` chunk (``page_sha256[k]`` covers bytes
    ``[k * page_size, (k + 1) * page_size)``). ``advance(nbytes)`` is called as it reads."""
    whole, pages = hashlib.sha256(), []
    page, in_page = hashlib.sha256(), 0
    # the whole file's hash on a thread of its own (hashlib lets go of the GIL): the two
    # hashes of each chunk at once, a third to half less time; one chunk waits at most
    with open(path, 'rb', buffering=0) as handle, \
            concurrent.futures.ThreadPoolExecutor(1) as whole_thread:
        hashing = None
        while True:
            data = handle.read(min(HASH_CHUNK, page_size - in_page))
            if not data:
                break
            if hashing is not None:
                hashing.result()
            hashing = whole_thread.submit(whole.update, data)
            page.update(data)
            in_page += len(data)
            if in_page == page_size:
                pages.append(page.hexdigest())
                page, in_page = hashlib.sha256(), 0
            if advance is not None:
                advance(len(data))
        if hashing is not None:
            hashing.result()
    if in_page:
        pages.append(page.hexdigest())
    return {'size': os.path.getsize(path), 'sha256': whole.hexdigest(),
            'page_size': int(page_size), 'page_sha256': pages}
