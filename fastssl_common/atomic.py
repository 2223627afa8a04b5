"""Write-then-rename, so that a crash never leaves a half-written file under the final name.

**Owned temporaries.** A temporary is named after its owner: ``.NAME.KIND-HOST-PID`` next to
``NAME`` (:func:`owned_name`; KIND ``tmp`` for :func:`atomic_path`, ``spool`` for the video
writers' spool folders). A process killed with ``kill -9`` cannot remove its own, so the next
write into the same folder removes those of its kind whose owner is gone
(:func:`remove_stale`: same host, no process with that PID) and says so in one line; other
hosts' temporaries are left alone, since their processes cannot be checked from here.

**Failed writes.** A write that fails for a reason of the file system (disk full, I/O error,
read-only) becomes one :class:`~fastssl_common.errors.UserError` line naming the final path
and the OS's reason; the temporary is removed and the final name is left as it was, and so
are the output folders the write had to create, which are removed again while empty.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading

from .errors import UserError

HOST = socket.gethostname()
PID_DIGITS = 7              # Linux's largest PID, 2**22, has 7 digits


def ensure_writable_dir(path):
    """Create ``path`` if needed and check we may write there; UserError names the folder."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create output folder {path}: '
                        f'{_not_a_folder(path) or err.strerror}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f'output folder {path} is not writable')


def _not_a_folder(path):
    """Why ``path`` cannot be a folder when its nearest existing part is a file or a link to
    nothing, or None: the OS says only 'File exists' or 'No such file or directory' (for a
    link that ``ls`` shows)."""
    part = path
    while part and not os.path.lexists(part):
        part = os.path.dirname(part)
    if not part or os.path.isdir(part):
        return None
    if not os.path.exists(part):
        return f'{part} is a symbolic link to {os.readlink(part)}, which does not exist'
    return f'{part} is a file, not a folder'


@contextlib.contextmanager
def output_folder(folder):
    """:func:`ensure_writable_dir` for the block; if the block fails, the folders it created
    are removed again while they are empty (a failed write leaves no new empty folders)."""
    folder = top = os.path.abspath(folder)
    while not os.path.exists(os.path.dirname(top)):
        top = os.path.dirname(top)
    created = None if os.path.exists(folder) else top
    ensure_writable_dir(folder)
    try:
        yield folder
    except BaseException:
        if created is not None:
            with stop_signals_held():
                _remove_empty_folders(folder, created)
        raise


def _remove_empty_folders(folder, top):
    """Remove ``folder`` and its parents up to ``top`` while they are empty."""
    while True:
        try:
            os.rmdir(folder)
        except OSError:
            return
        if folder == top:
            return
        folder = os.path.dirname(folder)


@contextlib.contextmanager
def stop_signals_held():
    """Ctrl-C and SIGTERM that arrive during the block take effect when it ends: for removing
    temporaries, which a stop half-way would leave, and for code that would swallow the
    exception they raise (a bare ``except:``). Signals reach the main thread only: in another
    thread the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held, owner = [], os.getpid()
    # a handler set outside Python (None here) could not be put back: it is left alone
    previous = {signum: handler for signum in (signal.SIGINT, signal.SIGTERM)
                if (handler := signal.getsignal(signum)) is not None}

    def hold(signum, frame):
        if os.getpid() == owner:
            held.append(signum)
        else:       # in a process forked in the block (a worker): it acts at once, as before
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)

    for signum in previous:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


# ---------------------------------------------------------------------------- owned names

def owned_name(final_path, kind):
    """``final_path``'s sibling ``.NAME.KIND-HOST-PID``, owned by this process (same folder,
    so that a rename is atomic). UserError naming ``final_path`` when that name may be longer
    than the file system allows (NAME itself may fit: the OS's 'File name too long' named a
    file the user never gave); checked with the widest PID, so that a name that passes once
    passes in every run."""
    folder, name = os.path.split(os.path.abspath(final_path))
    widest, limit = len(os.fsencode(f'.{name}.{kind}-{HOST}-')) + PID_DIGITS, _name_max(folder)
    if widest > limit:
        raise UserError(f'cannot write {final_path}: its name is too long for the temporary '
                        f'.NAME.{kind}-{HOST}-PID written beside it (up to {widest} bytes, '
                        f'over the {limit} a name may have here): shorten it by '
                        f'{widest - limit} bytes')
    return os.path.join(folder, f'.{name}.{kind}-{HOST}-{os.getpid()}')


def _name_max(folder):
    """The longest file name, in bytes, of the file system of ``folder`` (or of its nearest
    existing parent: the folder may not exist yet); 255, Linux's, where it cannot be asked."""
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        limit = os.pathconf(folder, 'PC_NAME_MAX')
    except (OSError, ValueError):
        return 255
    return limit if limit > 0 else sys.maxsize     # -1: the file system sets no limit


def temporary_name(final_path):
    """The sibling name for ``final_path`` while it is being written."""
    return owned_name(final_path, 'tmp')


def pid_alive(pid):
    """True when a process with this PID exists on this host (or may: not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_entries(folder, kind):
    """The entries of ``folder`` named by :func:`owned_name` with ``kind`` whose owner, a
    process of this host, is gone."""
    owned = re.compile(rf'^\..+\.{re.escape(kind)}-(?P<host>.+)-(?P<pid>\d+)$')
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    stale = []
    for name in names:
        match = owned.match(name)
        if (match and match['host'] == HOST and int(match['pid']) != os.getpid()
                and not pid_alive(int(match['pid']))):
            stale.append(os.path.join(folder, name))
    return stale


def remove_stale(folder, kind):
    """Remove :func:`stale_entries` (files or folders), with one line on stderr naming them;
    returns their paths. A removal that fails (another process got there first) is skipped."""
    removed = []
    for path in stale_entries(folder, kind):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        removed.append(path)
    if removed:
        names = ', '.join(os.path.basename(p) for p in removed[:3])
        more = f' and {len(removed) - 3} more' if len(removed) > 3 else ''
        print(f'removed {len(removed)} stale temporar{"y" if len(removed) == 1 else "ies"} '
              f'left in {folder} by processes that are gone: {names}{more}', file=sys.stderr)
    return removed


# ---------------------------------------------------------------------------- failed writes

def disk_full(folder):
    """True when the file system holding ``folder`` has no block or inode left for us."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    # some file systems report no totals at all (f_files 0 on btrfs): those say nothing
    return bool((stats.f_blocks and not stats.f_bavail) or (stats.f_files and not stats.f_favail))


def write_failure(err, folder, own_paths=()):
    """The OS's reason why a write into ``folder`` failed with ``err``, or None when ``err``
    is not a file-system failure (a bug, or bad input: it keeps its own report).

    An OSError counts when it names no file, or one of ``own_paths`` or a file in them (an
    error about some input file is not a write failure). Libraries that hide the OS error
    behind their own (``torch.save`` raises a RuntimeError) count when the file system is
    full afterwards.
    """
    if isinstance(err, (UserError, BrokenPipeError)):    # a reader gone is not a disk fault
        return None
    if isinstance(err, OSError) and err.errno is not None:
        if err.filename is None or any(_within(err.filename, own) for own in own_paths):
            return err.strerror or os.strerror(err.errno)
        return None
    if disk_full(folder):
        return os.strerror(errno.ENOSPC)
    return None


def _within(path, own):
    """True when ``path`` is ``own`` or lies inside the folder ``own``."""
    path, own = os.path.abspath(os.fsdecode(path)), os.path.abspath(own)
    return path == own or path.startswith(own + os.sep)


def cannot_write(path, reason):
    """The one-line error for a write to ``path`` that failed for ``reason``."""
    return UserError(f'cannot write {path}: {reason}')


@contextlib.contextmanager
def write_errors(path, folder=None, own_paths=()):
    """Turn a file-system failure inside the block (:func:`write_failure`) into one
    UserError line naming ``path``; anything else passes through unchanged."""
    try:
        yield
    except Exception as err:
        reason = write_failure(err, folder or os.path.dirname(os.path.abspath(path)),
                               own_paths)
        if reason is None:
            raise
        raise cannot_write(path, reason) from None


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path; rename it to ``final_path`` only if the block succeeds.

    Stale temporaries of dead processes in the folder are removed first; a file-system
    failure becomes one UserError line naming ``final_path``; the temporary never stays. A
    ``final_path`` that is a symbolic link to a file is written where it leads, as ``cp``
    writes (the link is kept; one that leads nowhere is replaced).
    """
    if os.path.islink(final_path) and os.path.exists(final_path):
        final_path = os.path.realpath(final_path)
    folder = os.path.dirname(os.path.abspath(final_path))
    with output_folder(folder):
        remove_stale(folder, 'tmp')
        tmp = temporary_name(final_path)
        try:
            with write_errors(final_path, folder, (tmp, final_path)):
                yield tmp
                os.replace(tmp, final_path)
        finally:
            with stop_signals_held():
                if os.path.isdir(tmp) and not os.path.islink(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
                elif os.path.lexists(tmp):
                    os.remove(tmp)


def write_json(final_path, obj):
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(final_path) as tmp:
        with open(tmp, 'w') as handle:
            json.dump(obj, handle, indent=2)
