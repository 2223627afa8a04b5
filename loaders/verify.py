"""Check a ``.beton`` completely before training on it.

    python -m loaders.verify FILE.beton [--quiet]

Size against its header and allocation table, size and SHA-256 (whole file and each page)
against its sidecar ``FILE.beton.json``, then every sample decoded and, in a pairs file, every
proposal row checked against the proposals contract (:func:`loaders.integrity.verify`), with
a progress bar (plain lines when the output is not a terminal). Exit status 0 and a summary
line when the file is whole; 2 and one ``error:`` line naming the problem otherwise; 130 soon
after Ctrl-C. A sidecar written before the writers recorded hashes gets the size and decode
checks, and a note saying so.
"""
import sys

from fastssl_common.cli import ArgParser
from fastssl_common.errors import run_cli

from .integrity import verify


def build_parser():
    parser = ArgParser(prog='python -m loaders.verify', description=(
        'Check a .beton: its size against its header, its size and SHA-256 hashes against '
        'its sidecar, and that every sample decodes (and keeps the proposals contract, in a '
        'pairs file).'))
    parser.add_argument('beton', metavar='FILE.beton', help='the file to check')
    parser.add_argument('--quiet', action='store_true', help='no progress, only the summary')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    summary = verify(args.beton, progress=not args.quiet)
    if summary['hashes'] is None:
        print(f"note: {summary['note']}: checked the size and every sample only",
              file=sys.stderr)
    checks = summary['hashes'] or 'size matches its header'
    print(f"{summary['path']}: ok, {summary['samples']} samples ({summary['decoded']} images "
          f"decoded), {summary['size']} bytes; {checks}")
    return 0


def cli():
    """Console entry point (``fastssl-verify``): ``main`` with one-line errors."""
    run_cli(main)


if __name__ == '__main__':
    cli()
