"""Write-then-rename, so that a crash never leaves a half-written file under the final name."""
import contextlib
import json
import os

from .errors import UserError


def ensure_writable_dir(path):
    """Create ``path`` if needed and check we may write there; UserError names the folder."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create output folder {path}: {err.strerror}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f'output folder {path} is not writable')


def temporary_name(final_path):
    """A sibling name for the in-progress file (same folder, so the rename is atomic)."""
    folder, name = os.path.split(os.path.abspath(final_path))
    return os.path.join(folder, f'.{name}.tmp-{os.getpid()}')


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path; rename it to ``final_path`` only if the block succeeds."""
    ensure_writable_dir(os.path.dirname(os.path.abspath(final_path)))
    tmp = temporary_name(final_path)
    try:
        yield tmp
        os.replace(tmp, final_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(final_path, obj):
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(final_path) as tmp:
        with open(tmp, 'w') as handle:
            json.dump(obj, handle, indent=2)
