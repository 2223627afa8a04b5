"""Loader memory that cannot fit, refused before the loader allocates it.

FFCV allocates every op's output for ``batches_ahead + 2`` batches at once when an epoch
starts (``kept_buffers.py``); a resolution or batch size far beyond the machine (a typo such
as ``resolution=100000``) ends there in a torch allocation traceback. :func:`check_batch_memory`
checks the views alone, a lower bound of what the loader needs, against the memory the
process may use.

Without the OS page cache (``os_cache=False``) FFCV reads the ``.beton`` into a cache of its
own, one slot of a page for each page the epoch holds at once. In random order a page is held
from the first batch that reads it to the last, so the cache is about the whole file, in every
process: a file larger than memory ends in a MemoryError when the first epoch starts, or in
the kernel's out-of-memory killer part way into it. :func:`check_process_cache` computes
FFCV's own schedule first.
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


def process_cache_bytes(loader):
    """``(bytes, pages held, pages in the file)`` of the process cache FFCV allocates for an
    epoch of ``loader`` (an ``ffcv.loader.Loader``), from its own schedule over the first
    epoch's batches; ``(0, 0, pages)`` with the OS page cache."""
    from ffcv.memory_managers.process_cache.manager import ProcessCacheManager
    from ffcv.memory_managers.process_cache.schedule import compute_schedule
    from ffcv.utils import chunks

    manager = loader.memory_manager
    pages = len(manager.page_to_samples)
    if not isinstance(manager, ProcessCacheManager):
        return 0, 0, pages
    order = loader.first_traversal_order[:len(loader) * loader.batch_size]
    needed = [set().union(*(manager.sample_to_pages[sample] for sample in batch))
              for batch in chunks(order, loader.batch_size)]
    held = compute_schedule(needed).num_slots   # what ProcessCacheContext allocates
    return held * int(loader.reader.page_size), held, pages


def check_process_cache(loader, path, order, keys, processes=1, available=None):
    """UserError unless ``processes`` copies (the loaders of this machine's processes) of
    ``loader``'s process cache (:func:`process_cache_bytes`) fit in ``available`` bytes
    (default :func:`usable_memory`); ``keys`` names the os_cache and order settings in the
    message, ``order`` is the loader's."""
    each, held, pages = process_cache_bytes(loader)
    available = usable_memory() if available is None else available
    if available is None or processes * each <= available:
        return
    os_cache_key, order_key = keys
    where = f'{processes} processes on this machine, {_size(each)} each' if processes > 1 \
        else 'in this process'
    fix = f'use {os_cache_key}=true (the OS page cache keeps what fits)'
    if order == 'random' and processes == 1:
        fix += f' or {order_key}=quasi_random (it reads a few pages at a time)'
    raise UserError(
        f"{os_cache_key}=false with {order_key}={order}: FFCV's own cache would hold "
        f'{_size(processes * each)} of {path} ({held} of its {pages} pages of '
        f'{_size(int(loader.reader.page_size))}; {where}), more than the {_size(available)} of '
        f"memory {'they' if processes > 1 else 'this process'} may use; {fix}")


def _size(count):
    for unit, scale in (('TB', 1e12), ('GB', 1e9), ('MB', 1e6)):
        if count >= scale:
            return f'{count / scale:.1f} {unit}'
    return f'{count} bytes'
