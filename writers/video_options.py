"""The options both video writers share: their checks, CLI arguments (``--shard`` included)
and problem reports."""
import hashlib
import os
import re
import sys

import numpy as np

from fastssl_common.errors import UserError
from fastssl_common.numbers import INT64_MAX, check_flag, check_number
from writers.video_segments import SEGMENT_FRAMES
from writers.writer_common import (
    add_output_arguments,
    check_resolution,
    check_workers,
)

# How --shard splits SRC: round robin over the sorted list keeps the shards' sizes within one
# video of each other (neighbouring videos are often alike in length).
SHARD_RULE = "video j of SRC's sorted list is in shard j mod N"


def common_options(max_resolution, jpeg_quality, workers, strict):
    """The checked options both video writers share."""
    return dict(max_resolution=check_resolution(max_resolution),
                jpeg_quality=check_number(jpeg_quality, '--jpeg-quality', 1, 100),
                workers=check_workers(workers), strict=check_flag(strict, '--strict'))


def add_common_arguments(parser):
    """The command-line arguments both video writers share."""
    add_output_arguments(
        parser, source='video file, or folder of videos / frame folders (recursive)',
        workers='processes decoding videos', unreadable='video or frame')
    parser.add_argument('--shard', metavar='I/N',
                        help=f'write shard I of N only (0 <= I < N): {SHARD_RULE}; '
                             'merge_betons.py joins the shards')
    parser.add_argument('--segment-frames', type=int, default=SEGMENT_FRAMES, metavar='N',
                        help='read a long video as segments of at least N frames (video '
                             'files: from key frames) that the workers read at the same '
                             f'time; 0 reads each video in one task (default {SEGMENT_FRAMES})')


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


def select_shard(sources, shard, src):
    """The sources of shard ``(I, N)`` of ``sources`` (SRC's videos, sorted) and the sidecar's
    ``shard`` entry; all sources and None without a shard. UserError for more shards than
    videos (a shard that would hold none, this one or another)."""
    if shard is None:
        return sources, None
    index, count = shard
    if count > len(sources):
        # every shard of the split must be able to hold a video: an empty one could never be
        # written, and a merge would wait for it
        found = len(sources)
        what = 'holds no video' if index >= found else 'leaves shards with no video'
        raise UserError(f"--shard {index}/{count} {what}: {src} has {found} "
                        f"video{'s' if found != 1 else ''} ({SHARD_RULE}); use at most "
                        f"{found} shard{'s' if found != 1 else ''}")
    # ``videos_found`` and ``listing_sha256`` let a merge check that every shard listed the
    # same SRC (the same paths relative to it, wherever it is mounted)
    return sources[index::count], {
        'indices': [index], 'count': count, 'videos_found': len(sources),
        'listing_sha256': listing_digest(sources, src), 'split': SHARD_RULE}


def listing_digest(sources, src):
    """SHA-256 (hex) of SRC's sorted listing: its videos' paths relative to SRC."""
    root = src if os.path.isdir(src) else os.path.dirname(src)
    names = '\n'.join(os.path.relpath(source.path, root) for source in sources)
    # the names' bytes on disk (UTF-8 for UTF-8 names, as before): a name that is not UTF-8
    # is held with surrogate escapes, which str.encode refuses
    return hashlib.sha256(os.fsencode(names)).hexdigest()


def nothing_written(what, src, skipped):
    """The one-line error when no video of SRC gave a sample."""
    first = skipped[0]
    if not os.path.isdir(src):
        return f"{what} in {src}: {first['reason']}"
    if len(skipped) == 1:
        return f"{what} in {src}: {first['path']}: {first['reason']}"
    return (f"{what} in {src} ({len(skipped)} videos skipped; first: {first['path']}: "
            f"{first['reason']})")


def print_problems(summary):
    """The skipped videos and warnings, on stderr (first 20 of each)."""
    for title, entries, key in (('skipped {} videos:', summary['skipped'], 'reason'),
                                ('{} warnings:', summary['warnings'], 'message')):
        if not entries:
            continue
        print(title.format(len(entries)), file=sys.stderr)
        for entry in entries[:20]:
            print(f"  {entry['path']}: {entry[key]}", file=sys.stderr)
        if len(entries) > 20:
            print(f"  ... and {len(entries) - 20} more (listed in {summary['sidecar']})",
                  file=sys.stderr)


def print_shard(shard):
    """The summary line of a shard (nothing without one)."""
    if shard is not None:
        (index,), count, found = shard['indices'], shard['count'], shard['videos_found']
        print(f'shard: {index}/{count} ({len(range(index, found, count))} of the {found} '
              f'videos found)')
