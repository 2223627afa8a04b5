"""User-facing errors: one clear line, non-zero exit, no traceback.

Code anywhere raises :class:`UserError` for problems the user can fix (a missing file, a bad
key); CLIs wrap their ``main`` in :func:`run_cli`, which prints the one line and exits 2.
Anything else is a bug and keeps its traceback.
"""
import os
import select
import signal
import sys

BROKEN_PIPE_EXIT = 141      # 128 + SIGPIPE: what a Unix tool whose reader went away returns
TERMINATED_EXIT = 143       # 128 + SIGTERM


class UserError(Exception):
    """An error caused by the user's input; its message names the file or key at fault."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, ``scancel``, ``kill``) raised in the main thread, so
    that what was half-written is removed on the way out, as for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated


def end_quietly_on_stop_signals():
    """In a worker process: Ctrl-C and SIGTERM end it at once (their default action), and the
    process that started it reports the stop and cleans up. A KeyboardInterrupt here would
    print a traceback, and an inherited SIGTERM handler would keep a pool worker alive."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


_PR_SET_PDEATHSIG = 1       # prctl(2)


def end_with_parent(parent):
    """In a worker process started by the process ``parent`` (its pid): killed when that one
    ends, however it ends (Linux). After a ``kill -9`` of the writer alone, a pool worker would
    otherwise wait for work for ever, holding the writer's OUT lock, whose open file it
    inherits, so that every later write of OUT was refused."""
    if sys.platform.startswith('linux'):
        import ctypes
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:      # the parent died before the line above
        os._exit(1)


def _say(line):
    """``line`` on stderr in one write: print() writes the newline apart, and the lines of the
    processes of one torchrun job, which share the terminal, ran into each other."""
    sys.stderr.write(line + '\n')
    sys.stderr.flush()


def run_cli(main, argv=None, stop_on_sigterm=False):
    """Call ``main(argv)``; turn a UserError (or Ctrl-C) into one line on stderr and exit code.

    Output piped into a reader that stops early (``--help | head -1``) ends quietly with
    exit status 141, as a Unix tool killed by SIGPIPE would, not with a BrokenPipeError.
    ``stop_on_sigterm`` (the writers, eval.py): SIGTERM stops as Ctrl-C does, cleaning up, with
    ``stopped by SIGTERM`` and exit status 143. Run as the program (``argv`` None), a stop
    signal after ``main`` has ended kills the process at once, as it would any finished tool.
    """
    if stop_on_sigterm:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        try:
            code = main(argv)
        finally:
            if argv is None:
                # the program's own run is over: a stop from here (a flush into a slow pipe,
                # the interpreter's second of thread and multiprocessing clean-up) ends it at
                # once, not with a KeyboardInterrupt traceback after a finished run
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            sys.stdout.flush()   # here, not at exit: a reader that has gone shows up now
    except UserError as err:
        _say('error: ' + one_line(str(err)))
        sys.exit(2)
    except Terminated:
        _say('stopped by SIGTERM')
        sys.exit(TERMINATED_EXIT)
    except KeyboardInterrupt:
        _say('interrupted')
        sys.exit(130)
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise
        silence_stdout()
        sys.exit(BROKEN_PIPE_EXIT)
    sys.exit(code or 0)


def one_line(text):
    """``text`` with its line breaks shown as ``\\n`` / ``\\r``: a file name may hold one, and a
    report's line stays one line."""
    return text.replace('\r', '\\r').replace('\n', '\\n')


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


def path_argument(value, name):
    """A library call's path argument ``name`` (a str, a ``pathlib.Path`` or bytes) as a str;
    anything else is a UserError naming ``name``, where it would fail deep inside (a Path has
    no ``endswith``)."""
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise UserError(f'{name} must be a path (a str or a pathlib.Path), got {value!r}')
    return os.fsdecode(value)


def require_file(path, what):
    """UserError unless ``path`` is a regular file: '``what`` PATH' and why it is not
    (:func:`not_a_file`)."""
    problem = not_a_file(path)
    if problem:
        raise UserError(f'{what} {path} {problem}')


def not_a_file(path):
    """Why ``path`` is not a regular file to read, or None: missing, a folder, a symbolic
    link that leads nowhere (``ls`` shows it: 'does not exist' would mislead) or a pipe,
    socket or device (opening a pipe waits for a writer)."""
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return 'is a folder, not a file'
    if os.path.exists(path):
        return 'is not a regular file (a pipe, socket or device)'
    if os.path.islink(path):
        return f'is a symbolic link to {os.readlink(path)}, which does not exist'
    return 'does not exist'
