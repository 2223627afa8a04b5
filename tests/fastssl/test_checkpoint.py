"""fastssl/checkpoint.py: a path that is not a readable PyTorch checkpoint is one line naming
it and why."""
import pytest

from fastssl.checkpoint import check_torch_file
from fastssl_common.errors import UserError


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(UserError, match=f'checkpoint {tmp_path} is a folder, not a file'):
        check_torch_file(str(tmp_path))


def test_a_file_that_cannot_be_read_names_the_reason():
    # /proc/self/mem is a file whose reading fails (EIO): a real unreadable file, even for root
    with pytest.raises(UserError, match='cannot read checkpoint /proc/self/mem: Input/output'):
        check_torch_file('/proc/self/mem')
