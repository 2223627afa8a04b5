"""User-facing errors: one clear line, non-zero exit, no traceback.

Code anywhere raises :class:`UserError` for problems the user can fix (a missing file, a bad
key); CLIs wrap their ``main`` in :func:`run_cli`, which prints the one line and exits 2.
Anything else is a bug and keeps its traceback.
"""
import sys


class UserError(Exception):
    """An error caused by the user's input; its message names the file or key at fault."""


def run_cli(main, argv=None):
    """Call ``main(argv)``; turn a UserError (or Ctrl-C) into one line on stderr and exit code."""
    try:
        code = main(argv)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
