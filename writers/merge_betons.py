"""Join ``.beton`` files of one schema (the shards of a ``--shard I/N`` write) into one.

    python writers/merge_betons.py OUT.beton IN.beton [IN.beton ...]

The inputs are video frames, video pairs or image files (``write_video_frames.py``,
``write_video_pairs.py``, ``write_images.py``) written with the same options. Every sample's
stored bytes (JPEG or raw images, proposal arrays) are copied as they are, never decoded or
re-encoded; only the pointers to them and the video ids change (an image's label is kept).
Shards of one write are put back in SRC's order (videos sorted by path relative to SRC, as
the video writers list them; images by the place in SRC's listing each shard records), so
that merging all N shards gives the file one unsharded write would have given, byte for
byte; other files are concatenated in the order given.

Checked before anything is written, each failure one ``error:`` line: every input exists,
is a complete ``.beton`` whose size and SHA-256 match its sidecar, and agrees with its
sidecar's video table or list of samples; the inputs share one schema, the same classes
(image files) and every writer option that changes what is stored (``--workers``,
``--strict``, ``--segment-frames`` and the location of SRC and of a ``--boxes`` file may
differ); shards are of one ``--shard I/N`` split of one SRC listing, none twice; files
without ``--shard`` do not hold the same bytes; no video, and no image (or box of one), is
in two inputs; OUT is not an input and does not exist. While copying, each input must
still be the file checked (not written again meanwhile).

The sidecar: the videos renumbered in the merged order (``id``, ``first_sample``) or the
samples in the merged order, skipped videos or images and warnings (a video's, each with its
``src`` where the inputs' SRC differ, so that the merged file can be merged again in SRC's
order), the options, the shards merged (``shard``), the inputs (``merged_from``), a fresh
``integrity``; every other entry combined from the inputs' (``writers/sidecar_combine.py``:
counts add up, a share or mean taken over one of them is recomputed from the totals,
settings the same in every input are kept, anything else that differs is kept per input).
:func:`merge_betons` is the library entry point.
"""
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fastssl_common.beton_file import (
    check_integrity_entry,
    check_layout,
    file_digest,
    pointer_column,
)
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import (
    IMAGES,
    LABEL,
    VIDEO_FRAMES,
    VIDEO_ID,
    VIDEO_PAIRS,
    sidecar_path,
)
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag
from fastssl_common.progress import progress_bar
from writers.shards import found_key
from writers.sidecar_combine import all_same, combine, is_count, same
from writers.writer_common import allocating, check_output, make_writer, write_outputs

MERGEABLE = (VIDEO_FRAMES.sidecar, VIDEO_PAIRS.sidecar, IMAGES.sidecar)
VIDEO_ID_FIELDS = (VIDEO_ID, LABEL)      # label = video_id in both video kinds
# Writer options that say how a file was made, not what it holds: they may differ (a boxes
# file's content is in a shard's listing hash, wherever the file lies).
OPERATIONAL_OPTIONS = ('src', 'workers', 'strict', 'segment_frames', 'boxes')
# Sidecar entries the merge rebuilds; every other one is combined by :func:`combine`.
REBUILT = ('format', 'num_samples', 'fields', 'videos', 'samples', 'skipped', 'warnings',
           'options', 'shard', 'integrity', 'merged_from')
MISSING_SHOWN = 10      # missing shards named in the summary and the note; the rest counted


@dataclass
class Input:
    """One input file: its path, sidecar, layout (:class:`fastssl_common.beton_file.Layout`),
    metadata rows, its allocation table's pointers and sizes sorted by pointer, and the
    :func:`_identity` of the file that was checked."""
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
        return _unit(self.sidecar)


def _unit(sidecar):
    """What SRC lists for the writer of ``sidecar`` (a mergeable one): 'video' or 'image'."""
    return 'image' if sidecar['format'] == IMAGES.sidecar else 'video'


def merge_betons(out, inputs, progress=None):
    """Merge the ``.beton`` files ``inputs`` (with their sidecars) into ``out`` and
    ``out + '.json'``. Returns a summary dict: ``out``, ``sidecar``, ``num_samples``,
    ``videos`` (the video table; None for image files), ``inputs`` (count), ``shard`` (the
    merged shards, None for files without ``--shard``), ``missing_shards`` (how many shards of
    the split that can hold a video or image are not merged) and ``first_missing_shards``
    (the first :data:`MISSING_SHOWN` of them).
    Paths may be str or ``pathlib.Path``; ``inputs`` any iterable of them (``Path.glob``'s
    too). Raises UserError for bad input; on failure neither file is created."""
    out = path_argument(out, 'out')
    # one path given alone would be read as its letters, each an input
    if isinstance(inputs, (str, bytes, os.PathLike)) or not isinstance(inputs, Iterable):
        raise UserError(f'inputs must be a list of .beton paths, got {inputs!r}')
    inputs = [path_argument(path, 'inputs') for path in inputs]   # a generator is read once
    progress = check_flag(progress, 'progress', unset=True)
    if not inputs:
        raise UserError('give at least one input .beton')
    out = _check_paths(out, inputs)
    with held_output(out):
        _check_new(out)     # again: a merge into OUT may have ended since the check
        files = []
        for path in inputs:
            try:
                files.append(_open_input(path, progress))
            except OSError as err:
                raise UserError(f'cannot read {path}: {err.strerror or err}') from None
        _check_formats(files)
        unit = files[0].unit
        options = _merged_options(files)      # a differing option names itself better than a field
        _check_fields(files)
        if unit == 'image':
            _check_classes(files)
        shard = _merged_shard(files, unit)
        sharded = shard is not None
        if not sharded:         # shards are told apart by their indices (see _check_distinct)
            _check_distinct(files)
        first = files[0].sidecar
        metadata = {'format': first['format'], 'num_samples': 0}
        if 'fields' in first:
            metadata['fields'] = first['fields']
        metadata.update(combine([{k: v for k, v in f.sidecar.items() if k not in REBUILT}
                                 for f in files]))
        if unit == 'video':
            # SRC at different places (mounted elsewhere on some machines): each video, skipped
            # video and warning keeps its own, which a later merge of this file orders shards by
            own_src = not isinstance(options['src'], str)
            videos, runs = _merged_videos(files, sharded, own_src)
            metadata.update(videos=videos,
                            skipped=_merged_entries(files, 'skipped', sharded, own_src),
                            warnings=_merged_entries(files, 'warnings', sharded, own_src))
        else:
            videos = None
            samples, runs = _merged_samples(files, sharded)
            metadata.update(samples=samples, skipped=_merged_image_entries(files, sharded))
        num_samples = metadata['num_samples'] = sum(count for _, _, count, _ in runs)
        metadata['options'] = options
        if sharded:
            metadata['shard'] = shard
        metadata['merged_from'] = [
            {'path': os.path.abspath(f.path),
             'sha256': f.sidecar.get('integrity', {}).get('sha256'),
             'num_samples': f.layout.num_samples,
             **({'videos': len(f.sidecar['videos'])} if unit == 'video' else {}),
             'shard': f.sidecar.get('shard')} for f in files]
        sidecar = write_outputs(out, lambda tmp: _write_merged(tmp, files, runs),
                                metadata, progress)
        missing, first_missing = (0, []) if shard is None else _missing_shards(shard, unit)
        return dict(out=out, sidecar=sidecar, num_samples=num_samples, videos=videos,
                    inputs=len(files), shard=shard, missing_shards=missing,
                    first_missing_shards=first_missing)


# ---------------------------------------------------------------------------- inputs

def _check_paths(out, inputs):
    """The path to write (:func:`check_output`), once ``out`` and ``inputs`` are checked."""
    real_out = os.path.realpath(out)
    seen = set()
    for path in inputs:
        real = os.path.realpath(path)
        if real == real_out:
            raise UserError(f'output {out} is also an input')
        if real in seen:
            raise UserError(f'input {path} is given twice')
        seen.add(real)
        if path.endswith('.json') and os.path.isfile(path[:-len('.json')]):
            raise UserError(f'input {path} is the sidecar of {path[:-len(".json")]}: give '
                            f'the .beton files only (a pattern such as DIR/*.beton): each is read '
                            f'with its sidecar')
        if not os.path.exists(path):
            # the shell passes a pattern that matches nothing on as it is
            unmatched = ' (a pattern that matched no file?)' if any(
                c in path for c in '*?[') else ''
            raise UserError(f'input {path} does not exist{unmatched}')
        if not os.path.isfile(path):
            raise UserError(f'input {path} is not a file')
    out = check_output(out)
    _check_new(out)
    return out


def _check_new(out):
    for existing in (out, out + '.json'):
        if os.path.lexists(existing):
            raise UserError(f'output {existing} already exists (the first argument is the '
                            f'file the merge writes: OUT.beton IN.beton ...)')


def _open_input(path, progress):
    """The :class:`Input` at ``path``, checked against its sidecar (UserError if it does not
    match: damaged, cut short, changed since it was written, or not a video file)."""
    identity = _identity(os.stat(path))
    sidecar_file = sidecar_path(path)
    try:
        with open(sidecar_file) as handle:
            sidecar = json.load(handle)
    except FileNotFoundError:
        raise UserError(f'input {path} has no sidecar {sidecar_file} (fastssl writers leave '
                        f'one next to each .beton)') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f'cannot read sidecar {sidecar_file}: {err}') from None
    kind = sidecar.get('format') if isinstance(sidecar, dict) else None
    if kind not in MERGEABLE:
        what = f'a {kind} file' if isinstance(kind, str) else 'a file of unknown format'
        raise UserError(f'{path} is {what}; merge_betons.py joins '
                        f'{" or ".join(MERGEABLE)} files')
    _check_sidecar(sidecar, sidecar_file)
    layout = check_layout(path)
    _check_integrity(path, layout, sidecar.get('integrity'), progress)
    if 'fields' in sidecar and list(sidecar['fields']) != list(layout.field_names):
        raise UserError(f'{sidecar_file} lists fields {", ".join(sidecar.get("fields", {}))} '
                        f'but {path} holds {", ".join(layout.field_names)}')
    row = np.dtype([('', h.metadata_type) for h in layout.handlers], align=True)
    metadata = np.fromfile(path, row, layout.num_samples, offset=layout.metadata_start)
    from ffcv.types import ALLOC_TABLE_TYPE

    table = np.fromfile(path, ALLOC_TABLE_TYPE, layout.num_samples * len(layout.pointer_fields),
                        offset=layout.alloc_table_ptr)
    order = np.argsort(table['ptr'], kind='stable')
    found = Input(path, sidecar, layout, metadata, table['ptr'][order], table['size'][order],
                  identity)
    _check_allocations(found, table['sample_id'][order])
    if found.unit == 'video':
        _check_video_table(found)
    elif len(sidecar['samples']) != layout.num_samples:
        raise UserError(f"{sidecar_file} lists {len(sidecar['samples'])} samples, {path} holds "
                        f"{layout.num_samples}")
    return found


def _identity(stat):
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
    unit = _unit(sidecar)
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


def _pointer_slots(layout):
    """(metadata column, pointer column or '') of each field whose data lies in the pages."""
    return [(f'f{i}', pointer_column(layout.handlers[i])) for i in layout.pointer_fields]


def _check_allocations(found, owners):
    """Every data pointer of every sample is one of its own allocations."""
    samples = np.arange(found.layout.num_samples)
    for name, column in _pointer_slots(found.layout):
        pointers = found.metadata[name][column] if column else found.metadata[name]
        where = np.minimum(np.searchsorted(found.pointers, pointers), len(found.pointers) - 1)
        bad = (found.pointers[where] != pointers) | (owners[where] != samples)
        if len(found.pointers) == 0 or bad.any():
            first = int(np.argmax(bad)) if len(found.pointers) else 0
            raise UserError(f'{found.path} is damaged: sample {first} points at data its '
                            f'allocation table does not give it')


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


# ---------------------------------------------------------------------------- checks

def _check_distinct(files):
    """No two inputs hold the same bytes (a copy or a hard link of one file). Not for
    shards: two shards of other videos hold the same bytes where their videos are alike (a
    clip found twice in SRC), and a copied shard names the same shard."""
    seen = {}
    for f in files:
        digest = (f.sidecar.get('integrity') or {}).get('sha256')
        if digest is not None and seen.setdefault(digest, f.path) != f.path:
            raise UserError(f'{f.path} holds the same bytes as {seen[digest]} (a copy of one '
                            f'file?): give each input once')


def _first_differing(files, key):
    """The first input whose sidecar ``key`` differs from the first input's, or None."""
    return next((f for f in files[1:] if f.sidecar[key] != files[0].sidecar[key]), None)


def _check_formats(files):
    first, other = files[0], _first_differing(files, 'format')
    if other is not None:
        raise UserError(f"schema differs: {first.path} is {first.sidecar['format']}, "
                        f"{other.path} is {other.sidecar['format']}")


def _check_fields(files):
    first = files[0]
    for other in files[1:]:
        if other.layout.field_names != first.layout.field_names:
            raise UserError(f'schema differs: {first.path} has fields '
                            f'{", ".join(first.layout.field_names)}, {other.path} has '
                            f'{", ".join(other.layout.field_names)}')
        for name, mine, theirs in zip(first.layout.field_names, first.layout.handlers,
                                      other.layout.handlers):
            if (type(mine) is not type(theirs)
                    or mine.to_binary().tobytes() != theirs.to_binary().tobytes()):
                raise UserError(f'schema differs: field {name} is stored differently in '
                                f'{first.path} and {other.path}')


def _merged_options(files):
    """The writer options, equal in every input except :data:`OPERATIONAL_OPTIONS` (kept
    when equal, else per input); UserError naming the first option that differs."""
    first = files[0]
    keys = list(dict.fromkeys(k for f in files for k in f.options))
    # a detector known by its bytes may lie at other paths (each job's own copy)
    by_bytes = ('detector',) if all(f.options.get('detector_sha256') for f in files) else ()
    merged = {}
    for key in keys:
        values = [f.options.get(key) for f in files]
        if key in OPERATIONAL_OPTIONS + by_bytes:
            merged[key] = values[0] if all_same(values) else {'per_input': values}
            continue
        for other, value in zip(files[1:], values[1:]):
            if not same(value, values[0]):
                if key == 'detector_sha256':
                    raise UserError(f'writer option --detector differs: {first.path} and '
                                    f'{other.path} were written with other checkpoints (SHA-256 '
                                    f'{_short_hash(values[0])}, {_short_hash(value)})')
                raise UserError(f"writer option --{key.replace('_', '-')} differs: "
                                f"{first.path} has {_shown(values[0])}, {other.path} has "
                                f"{_shown(value)}")
        merged[key] = values[0]
    return merged


def _shown(value):
    return 'none' if value is None else json.dumps(value)


def _short_hash(digest):
    return 'not recorded' if digest is None else digest[:12] + '…'


def _check_classes(files):
    """Image files: one class list, so that every label means the same class."""
    first, other = files[0], _first_differing(files, 'classes')
    if other is not None:
        raise UserError(f'classes differ: {first.path} has {_classes(first)}, {other.path} '
                        f'has {_classes(other)}: their labels would name other classes')


def _classes(found):
    classes = found.sidecar['classes']
    shown = ', '.join(map(str, classes[:5])) + (', ...' if len(classes) > 5 else '')
    return f'{len(classes)} classes' + (f' ({shown})' if classes else '')


def _merged_shard(files, unit):
    """The merged sidecar's ``shard`` entry (None when no input is a shard, or each holds
    all shards of its split); UserError for inputs that are not shards of one split of one SRC
    listing, or one shard twice."""
    entries = [f.sidecar.get('shard') for f in files]
    # a merge of every shard of a split is the file one write gives: joined as one
    whole = [entry is None or _missing_shards(entry, unit)[0] == 0 for entry in entries]
    if all(whole):
        # SRC written twice, perhaps mounted at two places (its paths then differ)
        seen = {}
        for f, entry in zip(files, entries):
            listing = (entry or {}).get('listing_sha256')
            if listing is not None and seen.setdefault(listing, f.path) != f.path:
                raise UserError(f'{seen[listing]} and {f.path} each hold every shard of one SRC '
                                f'listing: give it once')
        return None
    first = next(f for f, is_whole in zip(files, whole) if not is_whole)
    for other, entry, is_whole in zip(files, entries, whole):
        differs = None if entry is None else _split_differs(first, other, unit)
        # a merge of every shard of another split is a whole file, not a shard of this one;
        # one of this split holds its shards again (named below)
        if entry is None or is_whole and differs:
            every = ' (it holds every shard of its split)' if entry else ''
            raise UserError(f'{first.path} is a --shard file, {other.path} is not{every}: '
                            f'merge the shards of one write')
        if differs:
            raise UserError(differs)
    owner = {}
    for f, entry in zip(files, entries):
        for index in entry['indices']:
            if index in owner:
                raise UserError(f"shard {index}/{entry['count']} is in both {owner[index]} "
                                f"and {f.path}")
            owner[index] = f.path
    return dict(first.sidecar['shard'], indices=sorted(owner))


def _split_differs(first, other, unit):
    """Why the shard ``other`` is not of the split of the shard ``first`` (None if it is)."""
    found = found_key(unit)
    mine, theirs = first.sidecar['shard'], other.sidecar['shard']
    if theirs['count'] != mine['count']:
        return (f"writer option --shard differs: {first.path} is one of {mine['count']} "
                f"shards, {other.path} one of {theirs['count']}")
    if theirs[found] != mine[found]:
        return (f'{first.path} and {other.path} were written from different SRC listings '
                f'({mine[found]} and {theirs[found]} {unit}s found): shard one SRC')
    listings = (mine.get('listing_sha256'), theirs.get('listing_sha256'))
    if None not in listings and listings[0] != listings[1]:    # older shards lack it
        return (f'{first.path} and {other.path} were written from different SRC listings (as '
                f'many {unit}s, other paths): shard one SRC')
    return None


def _missing_shards(shard, unit):
    """How many shards of the split ``shard`` (the merged entry) that can hold a video or
    image are not in it, and the first :data:`MISSING_SHOWN` of them: found without listing
    every shard (N may be huge in a sidecar). Shards from ``videos_found`` on hold no video
    (older writers let N exceed the videos), so they are never missing."""
    possible = min(shard['count'], shard[found_key(unit)])
    merged = set(shard['indices'])
    first = list(itertools.islice((i for i in range(possible) if i not in merged),
                                  MISSING_SHOWN))
    return possible - sum(1 for i in merged if i < possible), first


# ---------------------------------------------------------------------------- videos

def _entry_src(entry, options):
    """The SRC a video, skipped video or warning was found in: its own where its file is a
    merge of inputs whose SRC differed, else its file's."""
    return entry.get('src', options['src'])


def _source_key(path, src):
    """Where ``path`` lies in its SRC's sorted listing (writers.video_source.find_videos)."""
    return tuple(os.path.normpath(os.path.relpath(path, src)).split(os.sep))


def _merged_videos(files, sharded, own_src):
    """The merged video table (ids and first samples renumbered; each video's SRC added when
    ``own_src``) and the runs of samples to copy, ``(input number, first sample, count, new
    video id)``, in the merged order."""
    order = [(number, video, _entry_src(video, f.options))
             for number, f in enumerate(files) for video in f.sidecar['videos']]
    # shards: a video in two of them was listed at one place by two SRC listings; other
    # files: one video written twice (from SRC and from a folder inside it, or through a
    # link to SRC, say), known by the path its sidecars record with the links resolved
    keys = [_source_key(video['source'], src) if sharded else os.path.realpath(video['source'])
            for _, video, src in order]
    first_input = {}
    for key, (number, video, _) in zip(keys, order):
        if first_input.setdefault(key, number) != number:
            raise UserError(f"video {video['source']} is in both "
                            f"{files[first_input[key]].path} and {files[number].path}: "
                            + ('shard one SRC' if sharded else 'give each video once'))
    if sharded:
        order = [item for _, item in sorted(zip(keys, order), key=lambda pair: pair[0])]
    videos, runs, first_sample = [], [], 0
    for new_id, (number, video, src) in enumerate(order):
        videos.append(dict(video, id=new_id, first_sample=first_sample,
                           **({'src': src} if own_src else {})))
        runs.append((number, video['first_sample'], video['num_samples'], new_id))
        first_sample += video['num_samples']
    return videos, runs


def _merged_entries(files, key, sharded, own_src):
    """The inputs' ``skipped`` or ``warnings`` lists as one, in SRC's order for shards (each
    entry's SRC added when ``own_src``)."""
    entries = [(entry, _entry_src(entry, f.options)) for f in files
               for entry in f.sidecar.get(key, [])]
    if sharded:
        entries.sort(key=lambda item: _source_key(item[0]['path'], item[1]))
    return [dict(entry, src=src) if own_src else entry for entry, src in entries]


# ---------------------------------------------------------------------------- images

def _merged_samples(files, sharded):
    """The merged image files' samples and the runs to copy, ``(input number, first sample,
    count, None)``, in the merged order: shards' by their place in SRC's listing, other files'
    in the order given. UserError for an image (or the same box of one) in two inputs."""
    order = [(number, sample, k) for number, f in enumerate(files)
             for k, sample in enumerate(f.sidecar['samples'])]
    if sharded:
        order.sort(key=lambda item: item[1]['index'])
        # no place twice in shards of one split of one SRC listing: an edited sidecar
        for (number, sample, _), (other, later, _) in zip(order, order[1:]):
            if sample['index'] == later['index']:
                raise UserError(f"place {sample['index']} in SRC's listing is given twice, in "
                                f"{sidecar_path(files[number].path)} and "
                                f"{sidecar_path(files[other].path)} (edited?): merge the shards "
                                f"as their writer wrote them")
    else:
        first_input = {}
        for number, sample, _ in order:
            key = os.path.realpath(sample['source']), json.dumps(sample.get('crop'))
            if first_input.setdefault(key, number) != number:
                what = '' if sample.get('crop') is None else f" (crop {sample['crop']})"
                raise UserError(f"image {sample['source']}{what} is in both "
                                f"{files[first_input[key]].path} and {files[number].path}: "
                                f"give each image once")
    runs = []
    for number, _, k in order:      # consecutive samples of one input are copied as one run
        if runs and runs[-1][0] == number and runs[-1][1] + runs[-1][2] == k:
            runs[-1][2] += 1
        else:
            runs.append([number, k, 1, None])
    return [sample for _, sample, _ in order], [tuple(run) for run in runs]


def _merged_image_entries(files, sharded):
    """The image files' ``skipped`` lists as one, in SRC's order for shards."""
    entries = [entry for f in files for entry in f.sidecar.get('skipped', [])]
    return sorted(entries, key=lambda entry: entry['index']) if sharded else entries


# ---------------------------------------------------------------------------- writing

def _write_merged(tmp, files, runs):
    """Write the merged samples to ``tmp`` with FFCV's DatasetWriter, copying every stored
    byte range (the allocator packs them into pages as the writers do)."""
    layout = files[0].layout
    fields = dict(zip(layout.field_names, layout.handlers))
    # every sample fitted in a page of its own file, so it fits in the largest of them
    page_size = max(f.layout.page_size for f in files)
    id_columns = [f'f{layout.field_names.index(n)}' for n in VIDEO_ID_FIELDS
                  if n in layout.field_names] if files[0].unit == 'video' else []
    num_samples = sum(count for _, _, count, _ in runs)
    writer = make_writer(tmp, fields, page_size)
    writer.from_jobs(num_samples, [(0, num_samples)], _copy_samples,
                     (files, runs, _pointer_slots(layout), id_columns))


def _copy_samples(todo, metadata_sm, metadata_type, fields, allocator, done, allocations,
                  files, runs, pointer_slots, id_columns):
    """FFCV writer worker (``make_writer``'s ``from_jobs`` protocol): each run's samples in
    turn, their metadata rows copied, data copied into fresh allocations, ids renumbered."""
    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    with allocating(allocator):
        while todo.get() is not None:
            index = 0
            for number, start, count, video_id in runs:
                source = files[number]
                # one input open at a time: a merge of more shards than the limit on open
                # files (often 1024) still runs
                with _checked_handle(source) as handle:
                    for sample in range(start, start + count):
                        _copy_sample(metadata, index, source, sample, handle, allocator,
                                     pointer_slots)
                        for column in id_columns:
                            metadata[column][index] = video_id
                        index += 1
                with done.get_lock():
                    done.value += count
    allocations.put(allocator.allocations)


@contextlib.contextmanager
def _checked_handle(source):
    """A handle on the input ``source`` to copy from, UserError if the file at its path is no
    longer the one checked: its data would not match the pointers read (a shard written
    again while the merge ran)."""
    try:
        handle = os.open(source.path, os.O_RDONLY)
    except OSError as err:
        raise UserError(f'cannot read {source.path}: {err.strerror} (while merging: nothing '
                        f'was kept)') from None
    try:
        if _identity(os.fstat(handle)) != source.identity:
            raise UserError(f'{source.path} changed while it was being merged (written '
                            f'again?): nothing was kept; merge once every shard is written')
        yield handle
    finally:
        os.close(handle)


def _copy_sample(metadata, index, source, sample, handle, allocator, pointer_slots):
    for attempt in range(2):      # as FFCV's writer: a sample that overflows its page is
        try:                      # undone and written again from a fresh page
            allocator.set_current_sample(index)
            metadata[index] = source.metadata[sample]
            for name, column in pointer_slots:
                pointers = metadata[name][column] if column else metadata[name]
                pointer = int(pointers[index])
                size = int(source.sizes[np.searchsorted(source.pointers, pointer)])
                data = os.pread(handle, size, pointer)
                if len(data) != size:
                    raise OSError(f'{source.path} ended inside sample {sample}')
                pointers[index], storage = allocator.malloc(size)
                storage[:] = np.frombuffer(data, np.uint8)
            return
        except MemoryError:
            if attempt == 1:
                raise


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog='merge_betons.py', description=(
        'Join .beton files of one schema (the shards of a write with --shard I/N) into one, '
        'copying their stored bytes, with one sidecar.'))
    parser.add_argument('out', metavar='OUT.beton', help='output file (must not exist)')
    parser.add_argument('inputs', metavar='IN.beton', nargs='+',
                        help='the files to join, each with its IN.beton.json sidecar')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    summary = merge_betons(args.out, args.inputs)
    videos = '' if summary['videos'] is None else f"videos: {len(summary['videos'])}, "
    print(f"inputs: {summary['inputs']}, {videos}samples: {summary['num_samples']}")
    shard = summary['shard']
    if shard is not None:
        print(f"shards: {_spans(shard['indices'])} of {shard['count']}")
        missing, first = summary['missing_shards'], summary['first_missing_shards']
        if missing:
            more = ', ...' if missing > len(first) else ''
            print(f"note: {missing} shard{'s' if missing > 1 else ''} of {shard['count']} not "
                  f"in this merge: {', '.join(map(str, first))}{more}", file=sys.stderr)
    print(f"output: {summary['out']} (metadata: {summary['sidecar']})")
    return 0


def _spans(indices):
    """Sorted shard numbers as text, each run of three or more as ``first-last`` (the line
    stays short for the hundreds of shards of an array job)."""
    spans = []
    for _, run in itertools.groupby(enumerate(indices), key=lambda item: item[1] - item[0]):
        numbers = [index for _, index in run]
        spans.append(f'{numbers[0]}-{numbers[-1]}' if len(numbers) >= 3 else
                     ', '.join(map(str, numbers)))
    return ', '.join(spans)


def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
