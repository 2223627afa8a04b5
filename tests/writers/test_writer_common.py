"""Writing a .beton and its sidecar as a pair: a failed sidecar leaves an earlier pair as it
was and no folder the write created; an output whose sidecar path is a folder is refused
before anything is read."""
import os
import shutil

import pytest

from fastssl_common.errors import UserError
from writers.writer_common import check_output, write_outputs


def test_a_sidecar_that_cannot_be_written_leaves_the_earlier_pair(tmp_path, small_beton):
    out = str(tmp_path / 'o.beton')
    write_outputs(out, lambda tmp: shutil.copy(small_beton, tmp), {'run': 1}, progress=False)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    with pytest.raises(TypeError):      # a set is not JSON: the sidecar fails part-way
        write_outputs(out, lambda tmp: shutil.copy(small_beton, tmp), {'run': {2}},
                      progress=False)
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
    assert sorted(before) == ['o.beton', 'o.beton.json']


def test_a_failed_write_removes_the_folders_it_created(tmp_path, small_beton):
    (tmp_path / 'kept').mkdir()
    out = str(tmp_path / 'kept' / 'new' / 'deeper' / 'o.beton')
    with pytest.raises(TypeError):
        write_outputs(out, lambda tmp: shutil.copy(small_beton, tmp), {'run': {2}},
                      progress=False)
    assert os.listdir(tmp_path) == ['kept'] and os.listdir(tmp_path / 'kept') == []


def test_an_output_whose_sidecar_path_is_a_folder_is_refused(tmp_path):
    (tmp_path / 'o.beton.json').mkdir()
    with pytest.raises(UserError, match=r'o.beton.json \(its sidecar\) is a folder'):
        check_output(str(tmp_path / 'o.beton'))
