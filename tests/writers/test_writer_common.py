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


def test_an_output_under_a_file_is_refused_in_the_words_of_the_other_outputs(tmp_path):
    (tmp_path / 'runs').write_text('notes')
    with pytest.raises(UserError, match=f'^cannot write {tmp_path}/runs/sub/x.beton: '
                                        f'{tmp_path}/runs is a file, not a folder$'):
        check_output(f'{tmp_path}/runs/sub/x.beton')


def test_an_output_linked_to_a_beton_is_written_where_the_link_leads(tmp_path):
    (tmp_path / 'disk').mkdir()
    (tmp_path / 'o.beton').symlink_to(tmp_path / 'disk' / 'o.beton')
    assert check_output(str(tmp_path / 'o.beton')) == str(tmp_path / 'disk' / 'o.beton')


@pytest.mark.parametrize('target', ['clip.mp4', 'notes.txt'])
def test_an_output_linked_to_a_file_that_is_no_beton_is_refused(tmp_path, target):
    """A link named .beton onto a source video (or onto a file not yet made) would have the
    writer replace that file with the dataset."""
    if target == 'clip.mp4':
        (tmp_path / target).write_bytes(b'video')
    (tmp_path / 'o.beton').symlink_to(tmp_path / target)
    with pytest.raises(UserError, match=rf'output \S+o.beton links to \S+{target}, which does '
                                        r'not end in .beton'):
        check_output(str(tmp_path / 'o.beton'))
    assert sorted(os.listdir(tmp_path)) == sorted({'o.beton', target} - {'notes.txt'})
