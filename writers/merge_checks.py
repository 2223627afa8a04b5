"""Whether the inputs of ``merge_betons.py`` may be joined, each already checked against
its sidecar (:mod:`writers.merge_inputs`): one schema, one class list (image files), the
same writer options, and either shards of one ``--shard I/N`` split of one SRC listing (none
twice) or whole files that are not copies of one another. Each failure is one UserError
naming the two inputs that disagree.
"""
import itertools
import json

from fastssl_common.errors import UserError
from writers.shards import found_key
from writers.sidecar_combine import all_same, same

# Writer options that say how a file was made, not what it holds: they may differ (a boxes
# file's content is in a shard's listing hash, wherever the file lies).
OPERATIONAL_OPTIONS = ('src', 'workers', 'strict', 'segment_frames', 'boxes')
MISSING_SHOWN = 10      # missing shards named in the summary and the note; the rest counted


def check_distinct(files):
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


def check_formats(files):
    first, other = files[0], _first_differing(files, 'format')
    if other is not None:
        raise UserError(f"schema differs: {first.path} is {first.sidecar['format']}, "
                        f"{other.path} is {other.sidecar['format']}")


def check_fields(files):
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


def merged_options(files):
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
                option = f"--{key.replace('_', '-')}"
                raise UserError(f'writer option {option} differs: '
                                f'{_holds(first.path, option, values[0])}, '
                                f'{_holds(other.path, option, value)}')
        merged[key] = values[0]
    return merged


def _holds(path, option, value):
    """'a.beton has 4', or, where the file was written without the option (--gap-range in
    place of --gap), 'a.beton was written without --gap'."""
    return f'{path} was written without {option}' if value is None else \
        f'{path} has {json.dumps(value)}'


def _short_hash(digest):
    return 'not recorded' if digest is None else digest[:12] + '…'


def check_classes(files):
    """Image files: one class list, so that every label means the same class."""
    first, other = files[0], _first_differing(files, 'classes')
    if other is not None:
        raise UserError(f'classes differ: {first.path} has {_classes(first)}, {other.path} '
                        f'has {_classes(other)}: their labels would name other classes')


def _classes(found):
    classes = found.sidecar['classes']
    shown = ', '.join(map(str, classes[:5])) + (', ...' if len(classes) > 5 else '')
    return f'{len(classes)} classes' + (f' ({shown})' if classes else '')


def merged_shard(files, unit):
    """The merged sidecar's ``shard`` entry (None when no input is a shard, or each holds
    all shards of its split); UserError for inputs that are not shards of one split of one SRC
    listing, or one shard twice."""
    entries = [f.sidecar.get('shard') for f in files]
    # a merge of every shard of a split is the file one write gives: joined as one
    whole = [entry is None or missing_shards(entry, unit)[0] == 0 for entry in entries]
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


def missing_shards(shard, unit):
    """How many shards of the split ``shard`` (the merged entry) that can hold a video or
    image are not in it, and the first :data:`MISSING_SHOWN` of them: found without listing
    every shard (N may be huge in a sidecar). Shards from ``videos_found`` on hold no video
    (older writers let N exceed the videos), so they are never missing."""
    possible = min(shard['count'], shard[found_key(unit)])
    merged = set(shard['indices'])
    first = list(itertools.islice((i for i in range(possible) if i not in merged),
                                  MISSING_SHOWN))
    return possible - sum(1 for i in merged if i < possible), first
