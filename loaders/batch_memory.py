"""Batch buffers that cannot fit in memory, refused before the loader allocates them.

FFCV allocates every op's output for ``batches_ahead + 2`` batches at once when an epoch
starts (``kept_buffers.py``); a resolution or batch size far beyond the machine (a typo such
as ``resolution=100000``) ends there in a torch allocation traceback. This checks the views
alone, a lower bound of what the loader needs, against the memory the process may use.
"""
import os

from fastssl_common.errors import UserError


def usable_memory():
    """Bytes of memory this process may use: the machine's RAM, or its cgroup's limit when
    lower (a container or a SLURM job); None when unknown."""
    try:
        limit = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        limit = None
    for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
        try:
            with open(path) as file:
                cgroup = int(file.read().strip())   # 'max' (no limit) fails here
        except (OSError, ValueError):
            continue
        limit = cgroup if limit is None else min(limit, cgroup)
        break
    return limit


def check_batch_memory(batch_size, resolution, views, keys, batches_ahead=3):
    """UserError unless the ``batches_ahead + 2`` batches FFCV allocates, of ``batch_size`` x
    ``views`` uint8 RGB views of ``resolution`` px, fit in :func:`usable_memory`; ``keys``
    names the batch size and the resolution in the message (config keys)."""
    slots = batches_ahead + 2
    needed = slots * batch_size * views * resolution * resolution * 3
    available = usable_memory()
    if available is not None and needed > available:
        batch_key, resolution_key = keys
        raise UserError(
            f"{resolution_key} {resolution} with {batch_key} {batch_size}: the loader's batch "
            f'buffers alone would take {_size(needed)} ({slots} batches of {batch_size} x '
            f'{views} view(s) of {resolution} x {resolution} px), more than the '
            f'{_size(available)} of memory this process may use')


def _size(count):
    for unit, scale in (('TB', 1e12), ('GB', 1e9), ('MB', 1e6)):
        if count >= scale:
            return f'{count / scale:.1f} {unit}'
    return f'{count} bytes'
