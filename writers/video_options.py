"""The options both video writers share: their checks, CLI arguments and problem reports."""
import os
import sys

from writers.writer_common import check_number, check_resolution, check_workers


def common_options(max_resolution, jpeg_quality, workers, strict):
    """The checked options both video writers share."""
    return dict(max_resolution=check_resolution(max_resolution),
                jpeg_quality=check_number(jpeg_quality, 'jpeg-quality', 1, 100),
                workers=check_workers(workers), strict=bool(strict))


def add_common_arguments(parser):
    """The command-line arguments both video writers share."""
    # positionals: argparse keeps them in order, wherever the options are added
    parser.add_argument('src', metavar='SRC',
                        help='video file, or folder of videos / frame folders (recursive)')
    parser.add_argument('out', metavar='OUT.beton', help='output file (must end in .beton)')
    parser.add_argument('--max-resolution', type=int, default=512,
                        help='cap on the longest side in pixels, >= 16, 0 for none '
                             '(default 512)')
    parser.add_argument('--jpeg-quality', type=int, default=90,
                        help='JPEG quality, 1 to 100 (default 90)')
    parser.add_argument('--workers', type=int, default=None,
                        help='processes decoding videos, 0 for one per CPU (default)')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first unreadable video or frame instead of skipping')


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
