"""Advisory locks that keep a second process out of an output another one is writing: a
training run's folder (:func:`held_folder`) and a writer's OUT (:func:`held_output`).

Two runs into one output (a job submitted twice, a command run again in another terminal)
would otherwise both end with exit status 0, the last to finish replacing the other's files,
with what is left mixing the two. The locks are ``flock``s: the OS lets go when the holder
ends, however it ends (``kill -9`` included). File systems without flock (some NFS or Lustre
mounts) go unchecked.
"""
import contextlib
import fcntl
import os

from .atomic import cannot_write, output_folder, stop_signals_held
from .errors import UserError


def _try_lock(handle):
    """Take the exclusive lock on the open file ``handle``: False when another process
    holds it; True when taken, or when the file system has no flock (unchecked)."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


@contextlib.contextmanager
def held_folder(folder, busy):
    """Hold the existing ``folder`` for the block (a lock on the folder itself: no file is
    left behind); UserError(``busy``) when another process holds it."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        if not _try_lock(handle):
            raise UserError(busy)
        yield
    finally:
        os.close(handle)


def lock_name(out):
    """The lock file of the output ``out``: ``.NAME.lock`` beside it."""
    folder, name = os.path.split(os.path.abspath(out))
    return os.path.join(folder, f'.{name}.lock')


@contextlib.contextmanager
def held_output(out):
    """Hold the output file ``out`` for one writer, from its first check to its last rename;
    UserError when another writer holds it. Creates ``out``'s folder (removed again, while
    empty, if the block fails).

    The lock is on the file ``.NAME.lock`` beside ``out`` (``out`` itself is replaced by a
    rename, and its folder may hold other writers' outputs), removed when the block ends. A
    writer killed outright leaves it, empty; the next writer of ``out`` takes it over."""
    folder = os.path.dirname(os.path.abspath(out))
    with output_folder(folder):
        path = lock_name(out)
        handle = _locked_file(path, out)
        try:
            yield
        finally:
            with stop_signals_held():
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                os.close(handle)


def _locked_file(path, out):
    """An open handle on the lock file ``path``, locked by this process."""
    while True:
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise cannot_write(out, f'cannot create {path}: {err.strerror}') from None
        if not _try_lock(handle):
            os.close(handle)
            raise UserError(f'{out} is being written by another writer: wait for it to end, '
                            f'or write another output')
        # the writer before may have removed the file between our open and our lock: the
        # lock counts only on the file that is still there
        try:
            if os.fstat(handle).st_ino == os.stat(path).st_ino:
                return handle
        except FileNotFoundError:
            pass
        os.close(handle)
