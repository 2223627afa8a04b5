"""``--shard I/N``: write one of N parts of SRC, so that N machines or the tasks of a
scheduler's array job each write one; ``merge_betons.py`` joins the parts into the file one
write would have given.

The split is round robin over SRC's listing (videos, or images), which keeps the shards'
sizes within one item of each other: neighbouring items are often alike in size. Each
shard's sidecar records how many items SRC listed and a SHA-256 of the listing, so that a
merge can check that every shard listed the same SRC, wherever it was mounted.
"""
import hashlib
import os
import re

import numpy as np

from fastssl_common.errors import UserError
from fastssl_common.numbers import INT64_MAX

SHARD_RULES = {
    'video': "video j of SRC's sorted list is in shard j mod N",
    # a boxes file's consecutive boxes of one image are one image: it is decoded once
    'image': "image j of SRC's listing is in shard j mod N",
}


def add_shard_argument(parser, unit):
    """The ``--shard I/N`` argument of a writer whose SRC lists ``unit`` items."""
    parser.add_argument('--shard', metavar='I/N',
                        help=f'write shard I of N only (0 <= I < N): {SHARD_RULES[unit]}; '
                             'merge_betons.py joins the shards')


def check_shard(shard):
    """``--shard I/N`` (the text, or a pair) as ``(I, N)``; None stays None (no sharding)."""
    if shard is None:
        return None
    if isinstance(shard, str):
        text = shard
    elif np.ndim(shard) == 1:
        text = '/'.join(map(str, shard))
    else:
        text = str(shard)           # 3: not a pair
    # [0-9], not \d: \d also takes other scripts' digits ('١/٢' would be read as 1/2)
    match = re.fullmatch(r'([0-9]+)/([0-9]+)', text.strip())
    if not match:
        raise UserError(f'--shard must be I/N with whole numbers 0 <= I < N, got {text!r}')
    # length first: int() refuses over 4300 digits with a ValueError, not a UserError
    if any(len(part.lstrip('0')) > len(str(INT64_MAX)) or int(part) > INT64_MAX
           for part in match.groups()):
        raise UserError(f'--shard is too large: at most {INT64_MAX} in size, got {text!r}')
    index, count = int(match[1]), int(match[2])
    if index >= count:
        raise UserError(f'--shard must be I/N with whole numbers 0 <= I < N, got {text!r}')
    return index, count


def select_shard(items, shard, src, unit, listing):
    """The items of shard ``(I, N)`` of ``items`` (SRC's ``unit`` items, in SRC's order) and
    the sidecar's ``shard`` entry; all items and None without a shard. ``listing`` is one line
    per item that names it wherever SRC lies (its path relative to SRC, say). UserError for
    more shards than items (a shard that would hold none, this one or another)."""
    if shard is None:
        return items, None
    index, count = shard
    found = len(items)
    if count > found:
        # every shard of the split must be able to hold an item: an empty one could never be
        # written, and a merge would wait for it
        what = f'holds no {unit}' if index >= found else f'leaves shards with no {unit}'
        raise UserError(f"--shard {index}/{count} {what}: {src} has {found} "
                        f"{unit}{'s' if found != 1 else ''} ({SHARD_RULES[unit]}); use at most "
                        f"{found} shard{'s' if found != 1 else ''}")
    return items[index::count], {
        'indices': [index], 'count': count, found_key(unit): found,
        'listing_sha256': listing_digest(listing), 'split': SHARD_RULES[unit]}


def found_key(unit):
    """The shard entry's count of the items SRC listed: ``videos_found``, ``images_found``."""
    return f'{unit}s_found'


def listing_digest(listing):
    """SHA-256 (hex) of SRC's listing, one line per item."""
    # the names' bytes on disk (UTF-8 for UTF-8 names): a name that is not UTF-8 is held with
    # surrogate escapes, which str.encode refuses
    return hashlib.sha256(os.fsencode('\n'.join(listing))).hexdigest()


def print_shard(shard, unit):
    """The summary line of a shard (nothing without one)."""
    if shard is not None:
        (index,), count, found = shard['indices'], shard['count'], shard[found_key(unit)]
        print(f'shard: {index}/{count} ({len(range(index, found, count))} of the {found} '
              f"{unit}{'s' if found != 1 else ''} found)")
