"""Loader memory beyond the machine's is refused before FFCV allocates it: the batch buffers,
and FFCV's own cache of the file without the OS page cache."""
import os
import re

import numpy as np
import pytest

from fastssl_common.errors import UserError
from loaders.batch_memory import (
    check_batch_memory,
    check_process_cache,
    process_cache_bytes,
    usable_memory,
)
from loaders.pair_loader import MultiViewLoader

KEYS = ('data.batch_size', 'data.resolution')


def test_usable_memory_is_at_most_the_machines_ram():
    ram = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    assert 0 < usable_memory() <= ram


def test_a_recipe_sized_batch_passes():
    check_batch_memory(256, 224, 4, KEYS)     # fti_rt at 224 px: 0.2 GB of views


def test_buffers_beyond_memory_are_one_line_naming_both_keys():
    # 5 batches (FFCV's 3 ahead + 2) of 16 x 2 views of 1e5 x 1e5 px, 3 bytes a pixel
    with pytest.raises(UserError) as err:
        check_batch_memory(16, 100_000, 2, KEYS)
    assert re.fullmatch(
        r"data\.resolution 100000 with data\.batch_size 16: the loader's batch buffers alone "
        r"would take 4\.8 TB \(5 batches of 16 x 2 view\(s\) of 100000 x 100000 px\), more "
        r"than the [0-9.]+ [GMT]B of memory this process may use", str(err.value))


def test_the_limit_is_the_usable_memory():
    """A batch just over the usable memory is refused, one just under it is not."""
    side = 1024
    per_batch = 5 * side * side * 3     # one view a sample, 5 batches
    fits = usable_memory() // per_batch
    check_batch_memory(fits, side, 1, KEYS)
    with pytest.raises(UserError):
        check_batch_memory(fits + 1, side, 1, KEYS)


# --- FFCV's own cache (os_cache=False) --------------------------------------------------------
PAGE = 1 << 21       # FFCV's smallest page: a small file of many pages
SAMPLES = 640


@pytest.fixture(scope='module')
def many_pages(module_tmp):
    """An images .beton of 640 noise JPEGs of 256 px (about 75 kB each) in 2 MB pages."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    from fastssl_common.formats import IMAGE, LABEL

    noise = np.random.default_rng(0).integers(0, 256, (SAMPLES // 8 + 256, 256, 3), np.uint8)
    path = str(module_tmp.mktemp('pages') / 'pages.beton')
    fields = {IMAGE: RGBImageField(write_mode='jpg', jpeg_quality=95), LABEL: IntField()}
    DatasetWriter(path, fields, page_size=PAGE, num_workers=1).from_indexed_dataset(
        [(noise[i // 8:i // 8 + 256], i % 2) for i in range(SAMPLES)])
    return path


def loader_of(path, order, os_cache=False, batch_size=8):
    return MultiViewLoader(path, batch_size, 32, order=order, os_cache=os_cache).loader


def test_process_cache_is_what_ffcv_allocates(many_pages):
    """The estimate equals the cache FFCV's own epoch context allocates for the same batches."""
    from ffcv.utils import chunks

    loader = loader_of(many_pages, 'random')
    size, held, pages = process_cache_bytes(loader)
    order = loader.next_traversal_order()        # epoch 0 again: the same order
    context = loader.memory_manager.schedule_epoch(
        list(chunks(order[:len(loader) * loader.batch_size], loader.batch_size)))
    context.__enter__()
    try:
        assert context.memory.shape == (held, PAGE)
    finally:
        context.__exit__(None, None, None)
    assert size == held * PAGE and pages > 16


def test_random_order_holds_every_page_quasi_random_a_few(many_pages):
    _, random_held, pages = process_cache_bytes(loader_of(many_pages, 'random'))
    # quasi_random draws from 2 x batch_size pages at a time
    _, quasi_held, _ = process_cache_bytes(loader_of(many_pages, 'quasi_random', batch_size=2))
    assert random_held == pages
    assert quasi_held < pages / 2
    assert process_cache_bytes(loader_of(many_pages, 'random', os_cache=True)) == (0, 0, pages)


def test_a_process_cache_beyond_memory_is_one_line_naming_the_fix(many_pages):
    loader = loader_of(many_pages, 'random')
    size, held, pages = process_cache_bytes(loader)
    keys = ('data.os_cache', 'data.order')
    check_process_cache(loader, many_pages, 'random', keys, available=size)
    with pytest.raises(UserError) as err:
        check_process_cache(loader, many_pages, 'random', keys, available=size - 1)
    assert str(err.value) == (
        f"data.os_cache=false with data.order=random: FFCV's own cache would hold "
        f'{size / 1e6:.1f} MB of {many_pages} ({held} of its {pages} pages of 2.1 MB; '
        f'in this process), more than the {(size - 1) / 1e6:.1f} MB of memory this process '
        f'may use; use data.os_cache=true (the OS page cache keeps what fits) or '
        f'data.order=quasi_random (it reads a few pages at a time)')
    # torchrun: each process on the machine holds its own (quasi_random is refused there)
    with pytest.raises(UserError, match=r'\(\d+ of its \d+ pages of 2.1 MB; 2 processes '
                       r'on this machine, [0-9.]+ MB each\), .* keeps what fits\)$'):
        check_process_cache(loader, many_pages, 'random', keys, processes=2,
                            available=2 * size - 1)
    check_process_cache(loader_of(many_pages, 'random', os_cache=True), many_pages, 'random',
                        keys, available=1)
