"""fastssl_common/beton_file.py: a .beton path that cannot be read is one line naming it."""
import hashlib

import numpy as np
import pytest

from fastssl_common.beton_file import check_layout, file_digest, own_allocations, tables_digest
from fastssl_common.errors import UserError


def test_a_file_that_cannot_be_read_names_the_reason():
    # /proc/self/mem is a file whose reading fails (EIO): a real unreadable file, even for root
    with pytest.raises(UserError, match='cannot read /proc/self/mem: Input/output error'):
        check_layout('/proc/self/mem')


def test_tables_digest_names_the_dataset_not_the_copy(small_beton, tmp_path):
    """A copy keeps the digest; a byte changed in the metadata rows or in an allocation's size
    changes it; a data-page byte (an image's pixels) is outside what it covers."""
    import shutil

    from ffcv.reader import Reader

    copy = tmp_path / 'copy.beton'
    shutil.copyfile(small_beton, copy)
    original = tables_digest(small_beton)
    assert tables_digest(copy) == original and len(original) == 64
    layout = check_layout(copy)
    reader = Reader(str(copy))
    first_image = int(reader.alloc_table['ptr'].min())

    def changed(offset):
        data = bytearray(copy.read_bytes())
        data[offset] ^= 1
        copy.write_bytes(bytes(data))
        digest = tables_digest(copy)
        data[offset] ^= 1
        copy.write_bytes(bytes(data))
        return digest != original
    assert changed(layout.metadata_end - 1)            # the last sample's metadata row
    assert changed(layout.alloc_table_ptr + 16)        # the first allocation's size
    assert not changed(first_image + 100)              # inside an image


@pytest.mark.parametrize('page_size', [0, 3000])
def test_a_header_whose_page_size_is_no_power_of_two_is_named(small_beton, tmp_path,
                                                              page_size):
    """FFCV writes pages of a power of 2 bytes; another value is damage, which every reader
    of the layout (inspect_pairs, merge_betons) would otherwise meet as a division by zero or
    FFCV's assertion."""
    import numpy as np
    from ffcv.types import HeaderType

    data = bytearray(open(small_beton, 'rb').read())
    header = np.frombuffer(bytes(data[:HeaderType.itemsize]), HeaderType).copy()
    header['page_size'] = page_size
    data[:HeaderType.itemsize] = header.tobytes()
    damaged = tmp_path / 'damaged.beton'
    damaged.write_bytes(bytes(data))
    with pytest.raises(UserError, match=rf'damaged.beton is not a readable .beton file '
                                        rf'\(damaged header: page size {page_size}\)'):
        check_layout(damaged)


def test_own_allocations_finds_each_samples_own_row():
    """FFCV's table: sample 0 at 100 (10 bytes), sample 1 at 110, sample 2 at 200, sorted by
    pointer; a pointer is a sample's own only where one of its allocations starts there."""
    from ffcv.types import ALLOC_TABLE_TYPE

    table = np.array([(0, 100, 10), (1, 110, 90), (2, 200, 5)], ALLOC_TABLE_TYPE)
    rows, own = own_allocations(table, [100, 110, 200])
    assert rows.tolist() == [0, 1, 2] and own.tolist() == [True, True, True]
    # sample 0 pointing at sample 1's data, sample 1 inside its own, sample 2 past the end
    rows, own = own_allocations(table, [110, 115, 300])
    assert rows.tolist() == [1, 2, 2] and own.tolist() == [False, False, False]
    rows, own = own_allocations(table[:0], [100, 110])
    assert own.tolist() == [False, False]
    assert own_allocations(table, [])[1].tolist() == []


def test_file_digest_is_the_sha256_of_the_file_and_of_each_page(tmp_path):
    """The two hashes run on two threads: each must still see every byte in order."""
    data = np.random.default_rng(0).integers(0, 256, 3_000_000, np.uint8).tobytes()
    path = tmp_path / 'f.bin'
    path.write_bytes(data)
    page = 300_001
    seen = []
    digest = file_digest(str(path), page, seen.append)
    assert digest['sha256'] == hashlib.sha256(data).hexdigest()
    assert digest['page_sha256'] == [hashlib.sha256(data[start:start + page]).hexdigest()
                                     for start in range(0, len(data), page)]
    assert digest['size'] == sum(seen) == len(data) and digest['page_size'] == page
