"""The inputs of ``merge_betons.py``: each ``.beton`` read with its sidecar and checked
against it before anything is merged: the sidecar's entries have their writer's shape, the
file's size and SHA-256 are the ones recorded, the allocations lie in the data pages apart from
each other, every data pointer is one of the sample's own allocations, and the video table or
list of samples fits the file. Each failure is one UserError naming the file.
"""
import os
from dataclasses import dataclass

import numpy as np

from fastssl_common.beton_file import (
    check_integrity_entry,
    check_layout,
    check_own_sidecar,
    file_digest,
    outside_data_pages,
    own_allocations,
    pointer_column,
)
from fastssl_common.errors import UserError
from fastssl_common.formats import (
    IMAGES,
    VIDEO_FRAMES,
    VIDEO_ID,
    VIDEO_PAIRS,
    load_sidecar,
    sidecar_path,
)
from fastssl_common.progress import progress_bar
from writers.shards import found_key
from writers.sidecar_combine import is_count

MERGEABLE = (VIDEO_FRAMES.sidecar, VIDEO_PAIRS.sidecar, IMAGES.sidecar)


@dataclass
class Input:
    """One input file: its path, sidecar, layout (:class:`fastssl_common.beton_file.Layout`),
    metadata rows, its allocation table's pointers and sizes sorted by pointer, and the
    :func:`file_identity` of the file that was checked."""
    path: str
    sidecar: dict
    layout: object
    metadata: np.ndarray
    pointers: np.ndarray
    sizes: np.ndarray
    identity: tuple

    @property
    def options(self):
        return self.sidecar['options']

    @property
    def unit(self):
        return unit_of(self.sidecar)


def unit_of(sidecar):
    """What SRC lists for the writer of ``sidecar`` (a mergeable one): 'video' or 'image'."""
    return 'image' if sidecar['format'] == IMAGES.sidecar else 'video'


def open_input(path, progress):
    """The :class:`Input` at ``path``, checked against its sidecar (UserError if it does not
    match: damaged, cut short, changed since it was written, or of a kind it cannot merge)."""
    identity = file_identity(os.stat(path))
    sidecar_file, sidecar = load_sidecar(path)
    if sidecar is None:
        raise UserError(f'input {path} has no sidecar {sidecar_file} (fastssl writers leave '
                        f'one next to each .beton)')
    kind = sidecar.get('format')
    if kind not in MERGEABLE:
        what = f'a {kind} file' if isinstance(kind, str) else 'a file of unknown format'
        raise UserError(f'{path} is {what}; merge_betons.py joins '
                        f'{" or ".join(MERGEABLE)} files')
    _check_sidecar(sidecar, sidecar_file)
    layout = check_layout(path)
    # before the hashes: another file's differ too, but would be named as damage
    check_own_sidecar(path, layout, sidecar, sidecar_file)
    _check_integrity(path, layout, sidecar.get('integrity'), progress)
    row = np.dtype([('', h.metadata_type) for h in layout.handlers], align=True)
    metadata = np.fromfile(path, row, layout.num_samples, offset=layout.metadata_start)
    from ffcv.types import ALLOC_TABLE_TYPE

    table = np.fromfile(path, ALLOC_TABLE_TYPE, layout.num_samples * len(layout.pointer_fields),
                        offset=layout.alloc_table_ptr)
    table = table[np.argsort(table['ptr'], kind='stable')]
    found = Input(path, sidecar, layout, metadata, table['ptr'], table['size'], identity)
    _check_allocations(found, table)
    if found.unit == 'video':
        _check_video_table(found)
    elif len(sidecar['samples']) != layout.num_samples:
        raise UserError(f"{sidecar_file} lists {len(sidecar['samples'])} samples, {path} holds "
                        f"{layout.num_samples}")
    return found


def file_identity(stat):
    """What tells one file from another written to its name: a rewrite (a shard task run
    again) replaces the file, or changes its size or modification time."""
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _check_sidecar(sidecar, sidecar_file):
    """The sidecar entries the merge reads have their writers' shape (UserError naming the
    first that does not: the file was damaged or edited)."""
    def is_list_of(value, keys, types):
        return isinstance(value, list) and all(
            isinstance(item, dict) and all(isinstance(item.get(k), t) for k, t in zip(keys, types))
            for item in value)

    def is_positive(value):
        return is_count(value) and value >= 1

    def are_indices(value, count):      # of a split of ``count`` shards, each once
        return (is_positive(count) and isinstance(value, list) and len(value) > 0
                and all(is_count(i) and 0 <= i < count for i in value)
                and len(set(value)) == len(value))

    whole = (int,)
    shard = sidecar.get('shard')
    is_shard = isinstance(shard, dict)
    options = sidecar.get('options')
    src = options.get('src') if isinstance(options, dict) else None
    # a merge of inputs whose SRC differed keeps it per input, and (videos) each entry its own
    per_input = isinstance(src, dict) and 'per_input' in src
    checks = {'options': isinstance(src, str) or per_input}
    unit = unit_of(sidecar)
    found = found_key(unit)
    if unit == 'video':
        own_src = ('src',) if per_input else ()
        checks.update({
            'fields': isinstance(sidecar.get('fields'), dict),
            'videos': is_list_of(sidecar.get('videos'),
                                 ('id', 'first_sample', 'num_samples', 'source', *own_src),
                                 (whole, whole, whole, str, str)),
            'skipped': is_list_of(sidecar.get('skipped', []), ('path', *own_src), (str, str)),
            'warnings': is_list_of(sidecar.get('warnings', []), ('path', *own_src), (str, str)),
        })
    else:
        # a shard's samples and skipped images record their place in SRC's listing, which
        # orders the merge (an edited one, not a whole number >= 0, would misplace them)
        index = ('index',) if is_shard else ()

        def are_entries(value, key):
            return is_list_of(value, (key, *index), (str, whole)) and (not is_shard or all(
                is_count(entry['index']) and entry['index'] >= 0 for entry in value))
        checks.update({
            'classes': isinstance(sidecar.get('classes'), list),
            'samples': are_entries(sidecar.get('samples'), 'source'),
            'skipped': are_entries(sidecar.get('skipped', []), 'path'),
            # every image shard has it (some video shards are older than the hash)
            'shard.listing_sha256': not is_shard or isinstance(shard.get('listing_sha256'), str),
        })
    checks.update({
        'shard': shard is None or is_shard,
        'shard.count': not is_shard or is_positive(shard.get('count')),
        f'shard.{found}': not is_shard or is_positive(shard.get(found)),
        'shard.indices': not is_shard or are_indices(shard.get('indices'), shard.get('count')),
        # absent from sidecars older than the hashes; null is an edit (nothing wrote it)
        'integrity': sidecar.get('integrity', {}) is not None,
    })
    for key, ok in checks.items():
        if not ok:
            raise UserError(f'sidecar {sidecar_file}: missing or invalid {key!r} '
                            f'(damaged or edited?)')
    check_integrity_entry(sidecar.get('integrity'), sidecar_file)


def _check_integrity(path, layout, integrity, progress):
    """The file's size and SHA-256 against its sidecar's (a sidecar older than the hashes
    has none to check)."""
    if not integrity:
        return
    if integrity.get('size') != layout.size:
        raise UserError(f'{path} is {layout.size} bytes, its sidecar records '
                        f'{integrity.get("size")} (damaged or changed since it was written)')
    with progress_bar(total=layout.size, desc=f'checking {os.path.basename(path)}', unit='B',
                      unit_scale=True, enabled=progress is not False) as bar:
        digest = file_digest(path, integrity.get('page_size', layout.page_size), bar.update)
    if digest['sha256'] != integrity.get('sha256'):
        pages = zip(digest['page_sha256'], integrity.get('page_sha256') or [])
        page = next((k for k, (got, want) in enumerate(pages) if got != want), None)
        where = '' if page is None else (
            f' (first at page {page}, bytes {page * digest["page_size"]}..'
            f'{min((page + 1) * digest["page_size"], layout.size)})')
        raise UserError(f'{path} differs from the SHA-256 its sidecar records{where}: '
                        f'damaged or changed since it was written')


def pointer_slots(layout):
    """(metadata column, pointer column or '') of each field whose data lies in the pages."""
    return [(f'f{i}', pointer_column(layout.handlers[i])) for i in layout.pointer_fields]


def _check_allocations(found, table):
    """Every allocation of ``table`` (sorted by pointer) lies in the data pages, apart from
    the others, and every data pointer of every sample is one of its own allocations (the
    SHA-256 finds any damage too, but a sidecar older than the hashes has none)."""
    layout, owners = found.layout, table['sample_id']
    outside = outside_data_pages(layout, found.pointers, found.sizes)
    ends = found.pointers + np.minimum(found.sizes, layout.size)    # no overflow
    overlapping = np.concatenate([ends[:-1] > found.pointers[1:], [False]])
    bad = outside | overlapping
    if bad.any():
        first = int(np.argmax(bad))
        where = 'lies outside the data pages' if outside[first] else 'runs into the next'
        raise UserError(f'{found.path} is damaged: the allocation of sample {owners[first]} '
                        f'({found.sizes[first]} bytes at {found.pointers[first]}) {where}')
    for name, column in pointer_slots(found.layout):
        pointers = found.metadata[name][column] if column else found.metadata[name]
        own = own_allocations(table, pointers)[1]
        if not own.all():
            raise UserError(f'{found.path} is damaged: sample {int(np.argmin(own))} points at '
                            f'data its allocation table does not give it')


def _check_video_table(found):
    """The sidecar's videos tile the samples in order, each run holding its own video_id."""
    ids = found.metadata[f'f{found.layout.field_names.index(VIDEO_ID)}']
    sidecar_file = sidecar_path(found.path)      # beside the file a linked input leads to
    start = 0
    for video in found.sidecar['videos']:
        first, count = video['first_sample'], video['num_samples']
        if first != start or not np.all(ids[first:first + count] == video['id']):
            raise UserError(f"{sidecar_file}'s video table does not match the video_id "
                            f"field of {found.path} (video {video['id']})")
        start += count
    if start != found.layout.num_samples:
        raise UserError(f'{sidecar_file} describes {start} samples, {found.path} holds '
                        f'{found.layout.num_samples}')
