"""fastssl_common/beton_file.py: a .beton path that cannot be read is one line naming it."""
import pytest

from fastssl_common.beton_file import check_layout
from fastssl_common.errors import UserError


def test_a_file_that_cannot_be_read_names_the_reason():
    # /proc/self/mem is a file whose reading fails (EIO): a real unreadable file, even for root
    with pytest.raises(UserError, match='cannot read /proc/self/mem: Input/output error'):
        check_layout('/proc/self/mem')
