"""fastssl/invariance_data/got10k.py on a GOT-10k train split in its on-disk format: the
authors' occlusion protocol, and bad layouts as one clear error."""
import os
import re

import numpy as np
import pytest

from fastssl.invariance_data import read_dataset
from fastssl_common.errors import UserError


def test_got10k_occlusion_protocol(got_root, invariance_trees):
    data = read_dataset('got10k', str(got_root))   # the folder above train/ is accepted too
    (m,) = data.measurements
    assert data.images.size == 128 and m.name == 'occlusion'
    # The authors' draw: np.random.seed(1992), then one choice per cover level (ascending)
    # of every kept sequence, in list.txt order; sequence 2 spans 8-5 = 3 < 4 and is skipped.
    np.random.seed(1992)
    expected_paths, expected_targets = [], []
    for name, cls, cover in invariance_trees.GOT_SEQUENCES:
        cover = np.array(cover)
        if cover.max() - cover.min() < 4:
            continue
        for level in np.unique(cover):
            frame = np.random.choice(np.where(cover == level)[0])
            expected_paths.append(os.path.join(name, f'{frame + 1:08d}.jpg'))
            expected_targets.append(cls.replace(' ', '_'))
    got = [os.path.relpath(p, got_root / 'train') for p in data.images.paths]
    assert got == expected_paths
    assert list(m.targets) == expected_targets
    assert sorted(set(m.set_ids)) == ['GOT-10k_Train_000001', 'GOT-10k_Train_000003',
                                      'GOT-10k_Train_000004']
    frame = int(os.path.basename(data.images.paths[0])[:-4]) - 1
    np.testing.assert_allclose(data.images.boxes[0], [4 + frame, 5.5, 30 + frame, 20.25])
    data.check()


def test_got10k_bad_layout(tmp_path, got_root):
    with pytest.raises(UserError, match='expected the file .*list.txt'):
        read_dataset('got10k', str(tmp_path))
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(got_root / 'train', broken)
    os.remove(broken / 'GOT-10k_Train_000003' / 'cover.label')
    with pytest.raises(UserError, match='expected the file .*000003/cover.label'):
        read_dataset('got10k', str(broken))
    (broken / 'GOT-10k_Train_000003' / 'cover.label').write_text('1\n8\n')
    with pytest.raises(UserError, match='2 levels for 6 boxes'):
        read_dataset('got10k', str(broken))


@pytest.fixture
def got_copy(tmp_path, got_root):
    """A writable copy of the GOT-10k train split."""
    import shutil
    return shutil.copytree(got_root / 'train', tmp_path / 'train')


@pytest.mark.parametrize('file, row, shown', [
    ('groundtruth.txt', '10,10,inf,30', "line 2 holds a non-finite number: '10,10,inf,30'"),
    ('groundtruth.txt', 'nan,10,30,30', "line 2 holds a non-finite number: 'nan,10,30,30'"),
    ('cover.label', 'inf', "line 2 holds a non-finite number: 'inf'"),
])
def test_a_non_finite_number_is_one_line_naming_the_file_and_line(got_copy, file, row, shown):
    path = got_copy / 'GOT-10k_Train_000001' / file
    lines = path.read_text().splitlines()
    lines[1] = row
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(UserError, match=rf'GOT-10k: .*000001/{file} {re.escape(shown)}'):
        read_dataset('got10k', str(got_copy))


def test_meta_info_that_is_not_utf8_is_one_line_naming_it(got_copy):
    # GOT-10k ships its meta_info.ini as ASCII; another encoding would garble the class name
    (got_copy / 'GOT-10k_Train_000003' / 'meta_info.ini').write_bytes(
        b'[METAINFO]\nurl: x\nobject_class: caf\xe9 car\n')
    with pytest.raises(UserError, match=r'000003/meta_info.ini line 3 is not UTF-8 text '
                                        r'\(byte 0xe9\)'):
        read_dataset('got10k', str(got_copy))


def test_byte_order_marks_are_ignored(got_copy, got_root):
    expected = read_dataset('got10k', str(got_root / 'train'))
    for path in [got_copy / 'list.txt', *got_copy.glob('*/groundtruth.txt'),
                 *got_copy.glob('*/cover.label'), *got_copy.glob('*/meta_info.ini')]:
        path.write_bytes(b'\xef\xbb\xbf' + path.read_bytes())
    data = read_dataset('got10k', str(got_copy))
    assert [os.path.relpath(p, got_copy) for p in data.images.paths] == \
        [os.path.relpath(p, got_root / 'train') for p in expected.images.paths]
    np.testing.assert_array_equal(data.images.boxes, expected.images.boxes)
    assert list(data.measurements[0].targets) == list(expected.measurements[0].targets)


def test_a_box_outside_its_frame_is_refused_naming_the_row(got_copy):
    # GOT-10k marks an absent object in absence.label and cover level 0, not with its box: a
    # box off the 64 x 48 frame would be scored as a black crop
    truth = got_copy / 'GOT-10k_Train_000004' / 'groundtruth.txt'
    truth.write_text('100,5.5,30,20\n' * 4)
    with pytest.raises(UserError, match=r'GOT-10k: .*000004/groundtruth.txt row [1-4]: the box '
                                        r'\(x, y, w, h\) = \(100, 5.5, 30, 20\) is entirely '
                                        r'outside the image \(frame 0000000[1-4].jpg, 64 x 48\)'):
        read_dataset('got10k', str(got_copy))
    truth.write_text('-20,-10,30,20\n' * 4)   # cut by the image: cropped, the rest black
    np.testing.assert_array_equal(read_dataset('got10k', str(got_copy)).images.boxes[-1],
                                  [-20, -10, 30, 20])
