"""The options both video writers share: their checks, CLI arguments (``--shard`` included)
and problem reports."""
import os
import sys

from fastssl_common.errors import one_line
from fastssl_common.numbers import check_flag, check_number
from writers.shards import add_shard_argument
from writers.video_segments import SEGMENT_FRAMES
from writers.writer_common import (
    add_output_arguments,
    check_resolution,
    check_workers,
)


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
    add_shard_argument(parser, 'video')
    parser.add_argument('--segment-frames', type=int, default=SEGMENT_FRAMES, metavar='N',
                        help='read a long video as segments of at least N frames (video '
                             'files: from key frames) that the workers read at the same '
                             f'time; 0 reads each video in one task (default {SEGMENT_FRAMES})')


def video_listing(sources, src):
    """SRC's sorted listing for :func:`writers.shards.select_shard`: each video's path
    relative to SRC."""
    root = src if os.path.isdir(src) else os.path.dirname(src)
    return [os.path.relpath(source.path, root) for source in sources]


def nothing_written(what, src, skipped, shard=None):
    """The one-line error when no video of SRC (of its shard ``(I, N)``, when given) gave a
    sample."""
    first = skipped[0]
    if shard is not None:       # the other shards may hold samples: their merge still works
        count = f"{len(skipped)} video{'s' if len(skipped) != 1 else ''} skipped"
        return (f"{what} in shard {shard[0]}/{shard[1]} of {src} ({count}; first: "
                f"{first['path']}: {first['reason']}): nothing to write; merge the other "
                f"shards without it")
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
            print(one_line(f"  {entry['path']}: {entry[key]}"), file=sys.stderr)
        if len(entries) > 20:
            print(f"  ... and {len(entries) - 20} more (listed in {summary['sidecar']})",
                  file=sys.stderr)
