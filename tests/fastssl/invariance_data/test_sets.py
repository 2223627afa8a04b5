"""fastssl/invariance_data/sets.py: what a reader produces (arrays of the declared types, the
transformation named after the measurement by default), the pre-extraction check naming the
dataset and measurement, and the layout helpers' one-line errors."""
import os

import numpy as np
import pytest

from fastssl.invariance_data.sets import (
    ImageList,
    InvarianceData,
    Measurement,
    require_dir,
    require_file,
    visible_entries,
)
from fastssl_common.errors import UserError


def test_measurement_holds_arrays_and_names_its_transformation():
    m = Measurement('occlusion', [2, 0, 1], ['s0', 's0', 's1'], ['cat', 'cat', 'dog'])
    assert m.rows.dtype == np.int64 and m.rows.tolist() == [2, 0, 1]
    assert isinstance(m.set_ids, np.ndarray) and m.set_ids.tolist() == ['s0', 's0', 's1']
    assert isinstance(m.targets, np.ndarray) and m.targets.tolist() == ['cat', 'cat', 'dog']
    assert m.transformation == 'occlusion' and m.magnitude is None and m.unit == ''
    curve = Measurement('viewpoint 30', [0], ['s0'], ['cat'], 'viewpoint', 30.0, 'degrees')
    assert (curve.transformation, curve.magnitude, curve.unit) == ('viewpoint', 30.0, 'degrees')


def test_image_list_length_is_its_paths():
    assert len(ImageList(['a.png', 'b.png', 'c.png'], 64)) == 3
    assert ImageList(['a.png'], 64).boxes is None


def scorable():
    """Two targets, each with a set of three images."""
    return Measurement('viewpoint', range(6), ['a'] * 3 + ['b'] * 3, ['cat'] * 3 + ['dog'] * 3)


def test_check_passes_scorable_data_and_names_the_measurement_that_is_not():
    images = ImageList([f'{i}.png' for i in range(6)], 32)
    data = InvarianceData('toy', '/data/toy', images, [scorable()])
    assert data.check() is data
    one_target = Measurement('colour', range(6), ['a'] * 3 + ['b'] * 3, ['cat'] * 6)
    bad = InvarianceData('toy', '/data/toy', images, [scorable(), one_target])
    with pytest.raises(UserError, match=r'^toy colour \(/data/toy\): .*at least two targets'):
        bad.check()


def test_required_paths_and_visible_entries(tmp_path):
    (tmp_path / 'b').mkdir()
    (tmp_path / 'a.txt').write_text('x')
    (tmp_path / '.hidden').write_text('x')
    assert require_dir(str(tmp_path), 'GOT-10k') == str(tmp_path)
    assert require_file(str(tmp_path / 'a.txt'), 'GOT-10k') == str(tmp_path / 'a.txt')
    with pytest.raises(UserError, match=r'^GOT-10k: expected the folder .*a\.txt$'):
        require_dir(str(tmp_path / 'a.txt'), 'GOT-10k')
    with pytest.raises(UserError, match=r'^ALOI: expected the file .*b$'):
        require_file(str(tmp_path / 'b'), 'ALOI')
    assert visible_entries(str(tmp_path)) == ['a.txt', 'b']
    with pytest.raises(UserError, match=r'cannot read folder .*missing'):
        visible_entries(str(tmp_path / 'missing'))


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads unreadable folders')
def test_unreadable_folder_is_one_line(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(UserError, match=r'cannot read folder .*locked: Permission denied'):
            visible_entries(str(locked))
    finally:
        locked.chmod(0o755)
