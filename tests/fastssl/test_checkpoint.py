"""fastssl/checkpoint.py: a path that is not a readable PyTorch checkpoint (another kind of
file, a zip archive cut short or with damaged bytes) is one line naming it and why."""
import pytest
import torch

from fastssl.checkpoint import check_torch_file
from fastssl_common.errors import UserError


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(UserError, match=f'checkpoint {tmp_path} is a folder, not a file'):
        check_torch_file(str(tmp_path))


def test_a_file_that_cannot_be_read_names_the_reason():
    # /proc/self/mem is a file whose reading fails (EIO): a real unreadable file, even for root
    with pytest.raises(UserError, match='cannot read checkpoint /proc/self/mem: Input/output'):
        check_torch_file('/proc/self/mem')


def saved(path, legacy=False):
    """A real torch.save file holding a tensor whose bytes are easy to find in it."""
    weights = torch.arange(1 << 16, dtype=torch.float32)
    torch.save({'w': weights, 'b': torch.ones(3)}, path,
               _use_new_zipfile_serialization=not legacy)
    return weights


def zero_bytes_of(path, tensor, count):
    """Zero ``count`` bytes in the middle of ``tensor``'s storage in the file, in place, as a
    disk or a size-keeping copy damages a file."""
    raw = bytearray(path.read_bytes())
    start = raw.find(tensor.numpy().tobytes()) + tensor.numel() * tensor.element_size() // 4
    raw[start:start + count] = bytes(count)
    path.write_bytes(bytes(raw))


def test_a_damaged_archive_names_the_member_that_fails_its_checksum(tmp_path):
    path = tmp_path / 'damaged.pt'
    weights = saved(path)
    zero_bytes_of(path, weights, 64 << 10)
    # torch.load verifies no checksum: it returns the zeros as weights
    assert (torch.load(path, weights_only=True)['w'] == 0).sum() >= 16 << 10
    with pytest.raises(UserError, match=r'damaged\.pt is damaged \(member damaged/data/0 '
                                        r'fails its checksum\)$'):
        check_torch_file(str(path))


def test_a_truncated_archive_is_named_as_such(tmp_path):
    path = tmp_path / 'cut.pt'
    saved(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r'cut\.pt is truncated or damaged \(its zip directory '
                                        r'cannot be read'):
        check_torch_file(str(path))


def test_a_legacy_file_has_no_checksums_and_is_accepted(tmp_path):
    path = tmp_path / 'legacy.pt'
    saved(path, legacy=True)
    check_torch_file(str(path))
