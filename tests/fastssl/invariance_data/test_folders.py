"""fastssl/invariance_data/folders.py on the generic ROOT/<target>/<set>/<image> layout, and
its bad inputs as one clear error."""
import os

import pytest

from fastssl.invariance_data import read_dataset
from fastssl.invariance_data.images import image_batches
from fastssl_common.errors import UserError


def test_generic_folders(tmp_path, invariance_trees):
    root = invariance_trees.folder_tree(tmp_path / 'sets')
    data = read_dataset('folders', str(root))
    (m,) = data.measurements
    assert m.set_ids.tolist() == ['cat/set0'] * 3 + ['cat/set1'] * 3 + ['dog/set0'] * 3 + \
        ['dog/set1'] * 3
    assert m.targets.tolist() == ['cat'] * 6 + ['dog'] * 6
    data.check()


def test_generic_bad_inputs(tmp_path, invariance_trees):
    root = invariance_trees.folder_tree(tmp_path / 'sets')
    (root / 'cat' / 'notes.txt').write_text('x')
    with pytest.raises(UserError, match=r'cat/notes.txt is not a folder; expected the layout'):
        read_dataset('folders', str(root))
    os.remove(root / 'cat' / 'notes.txt')
    (root / 'dog' / 'set1' / '0.png').write_bytes(b'not an image')
    data = read_dataset('folders', str(root))
    with pytest.raises(UserError, match=r'cannot read image .*dog/set1/0.png'):
        list(image_batches(data.images, range(len(data.images)), batch_size=4))
    one = invariance_trees.folder_tree(tmp_path / 'one', targets=('cat',))
    with pytest.raises(UserError, match='at least two targets'):
        read_dataset('folders', str(one)).check()
    small = invariance_trees.folder_tree(tmp_path / 'small', sets=1, images=2)
    with pytest.raises(UserError, match='no target has a set of at least 3 images'):
        read_dataset('folders', str(small)).check()
    with pytest.raises(UserError, match='expected the folder'):
        read_dataset('folders', str(tmp_path / 'missing'))


@pytest.mark.parametrize('make, problem', [
    (lambda path: os.symlink('/nonexistent/x.png', path),
     'is a symbolic link to /nonexistent/x.png, which does not exist'),
    (lambda path: os.mkdir(path), 'is a folder, not a file'),
    (lambda path: os.mkfifo(path), 'is not a regular file (a pipe, socket or device)'),
])
def test_an_image_name_that_is_no_file_says_what_it_is(tmp_path, invariance_trees, make,
                                                       problem):
    """Each was 'is not an image file (.jpg, .jpeg, .png, ...)' of a name ending in .png."""
    root = invariance_trees.folder_tree(tmp_path / 'sets')
    make(root / 'cat' / 'set0' / 'odd.png')
    with pytest.raises(UserError) as refused:
        read_dataset('folders', str(root))
    assert str(refused.value) == f"{root / 'cat' / 'set0' / 'odd.png'} {problem}; expected " \
                                 f"the layout ROOT/<target>/<set>/<image>"


def test_empty_folders_are_named_in_a_note(tmp_path, invariance_trees, capsys):
    """They were left out without a word: an empty target is not among those averaged."""
    root = invariance_trees.folder_tree(tmp_path / 'sets')
    (root / 'cat' / 'set2').mkdir()
    (root / 'bird').mkdir()
    data = read_dataset('folders', str(root))
    assert len(data.images) == 12
    assert capsys.readouterr().err == (f"note: 2 empty folder(s) of {root} left out: "
                                       f"{root / 'bird'}, {root / 'cat' / 'set2'}\n")
