"""Batch buffers beyond the machine's memory are refused before FFCV allocates them."""
import os
import re

import pytest

from fastssl_common.errors import UserError
from loaders.batch_memory import check_batch_memory, usable_memory

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
