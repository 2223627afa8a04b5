"""User-facing errors: one clear line, non-zero exit, no traceback.

Code anywhere raises :class:`UserError` for problems the user can fix (a missing file, a bad
key); CLIs wrap their ``main`` in :func:`run_cli`, which prints the one line and exits 2.
Anything else is a bug and keeps its traceback.
"""
import os
import select
import sys

BROKEN_PIPE_EXIT = 141      # 128 + SIGPIPE: what a Unix tool whose reader went away returns


class UserError(Exception):
    """An error caused by the user's input; its message names the file or key at fault."""


def run_cli(main, argv=None):
    """Call ``main(argv)``; turn a UserError (or Ctrl-C) into one line on stderr and exit code.

    Output piped into a reader that stops early (``--help | head -1``) ends quietly with
    exit status 141, as a Unix tool killed by SIGPIPE would, not with a BrokenPipeError.
    """
    try:
        try:
            code = main(argv)
        finally:
            sys.stdout.flush()   # here, not at exit: a reader that has gone shows up now
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise
        silence_stdout()
        sys.exit(BROKEN_PIPE_EXIT)
    sys.exit(code or 0)


def stdout_reader_gone():
    """True when standard output is a pipe or socket whose reading end has been closed."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP)
                   for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def silence_stdout():
    """Point standard output at /dev/null, so that the interpreter's flush at exit (of text
    still buffered for a reader that has gone) does not report a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def require_file(path, what):
    """UserError unless ``path`` is a file: '``what`` PATH does not exist' or '... is a
    folder, not a file'."""
    if not os.path.isfile(path):
        raise UserError(f'{what} {path} is a folder, not a file' if os.path.isdir(path) else
                        f'{what} {path} does not exist')
