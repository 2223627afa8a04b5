"""Write-then-rename leaves either the complete file or nothing."""
import os

import pytest

from fastssl_common.atomic import atomic_path, ensure_writable_dir, write_json
from fastssl_common.errors import UserError


def test_file_appears_only_on_success(tmp_path):
    target = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, 'wb') as handle:
                handle.write(b'half')
            raise RuntimeError('crash while writing')
    assert os.listdir(tmp_path) == []
    with atomic_path(str(target)) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(b'whole')
    assert target.read_bytes() == b'whole' and os.listdir(tmp_path) == ['out.bin']


def test_failed_rewrite_keeps_the_previous_file(tmp_path):
    target = tmp_path / 'r.json'
    write_json(str(target), {'v': 1})
    with pytest.raises(TypeError):
        write_json(str(target), {'v': object()})
    assert target.read_text().strip().startswith('{') and '"v": 1' in target.read_text()
    assert os.listdir(tmp_path) == ['r.json']


def test_unwritable_folder_is_a_user_error_naming_it(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(UserError, match='a_file'):
        ensure_writable_dir(str(blocker / 'sub'))
