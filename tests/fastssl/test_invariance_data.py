"""Every invariance dataset reader on a fixture tree in its real on-disk format; the image
loader against torchvision's crop + resize; bad layouts give one clear error."""
import os

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

from fastssl.invariance_data import read_dataset
from fastssl.invariance_data.images import image_batches, load_image
from fastssl_common.errors import UserError


def names(paths):
    return [os.path.basename(p) for p in paths]


def groups(measurement, data):
    """{set id: sorted image names} of a measurement."""
    out = {}
    for row, z in zip(measurement.rows, measurement.set_ids):
        out.setdefault(str(z), []).append(os.path.basename(data.images.paths[row]))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope='module')
def got_root(tmp_path_factory, invariance_trees):
    return invariance_trees.got10k_tree(tmp_path_factory.mktemp('got'))


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


def test_loader_matches_torchvision_crop_and_resize(got_root):
    data = read_dataset('got10k', str(got_root / 'train'))
    path, box = data.images.paths[1], data.images.boxes[1]
    x, y, w, h = box
    with Image.open(path) as image:
        reference = TF.resize(TF.crop(image.convert('RGB'), y, x, h, w), [128, 128])
    np.testing.assert_array_equal(load_image(path, 128, box), np.asarray(reference))
    batches = list(image_batches(data.images, range(len(data.images)), batch_size=4,
                                 workers=2))
    assert [tuple(b.shape) for b, _ in batches] == [(4, 128, 128, 3)] * 2 + \
        [(len(data.images) - 8, 128, 128, 3)]
    np.testing.assert_array_equal(batches[0][0][1].numpy(), np.asarray(reference))
    assert np.concatenate([r.numpy() for _, r in batches]).tolist() == \
        list(range(len(data.images)))


@pytest.mark.parametrize('layout,kind,name', [('view', 'aloi_view', 'viewpoint'),
                                              ('col', 'aloi_col', 'illumination colour'),
                                              ('ill', 'aloi_ill', 'illumination direction')])
def test_aloi_png2_trees(tmp_path, layout, kind, name, invariance_trees):
    root = invariance_trees.aloi_tree(tmp_path, layout)
    data = read_dataset(kind, str(root))
    (m,) = data.measurements
    assert m.name == name and data.images.size == 128 and data.images.boxes is None
    per_object = len(invariance_trees.ALOI_NAMES[layout])
    assert m.set_ids.tolist() == m.targets.tolist() == \
        [obj for obj in (1, 2, 3, 12) for _ in range(per_object)]
    assert sorted(names(data.images.paths[:per_object])) == \
        sorted(f'1_{s}.png' for s in invariance_trees.ALOI_NAMES[layout])
    data.check()


def test_aloi_wrong_tree_and_layout(tmp_path, invariance_trees):
    root = invariance_trees.aloi_tree(tmp_path, 'view')
    with pytest.raises(UserError, match=r'1_r0.png is not named like 1_i110.png .*aloi_red2_col'):
        read_dataset('aloi_col', str(root / 'png2'))
    with pytest.raises(UserError, match='expected one folder per object'):
        read_dataset('aloi_view', str(root / 'png2' / '1'))


def test_pascal3d_instance_and_viewpoint_sets(tmp_path, invariance_trees):
    root = invariance_trees.pascal3d_tree(tmp_path)
    data = read_dataset('pascal3d', str(root))
    instance, view = data.measurements
    assert data.images.size == 224
    # Hand-binned from the fixture: azimuth bin (az mod 180)//30, elevation (el mod 90)//30;
    # PASCAL objects of other classes or without a viewpoint are left out.
    assert groups(instance, data) == {
        'aeroplane/az0/el0': ['2008_000033.jpg', '2008_000037.jpg', 'n02690373_1.JPEG'],
        'aeroplane/az0/el1': ['n02690373_2.JPEG'],
        'aeroplane/az0/el2': ['n02690373_3.JPEG'],
        'aeroplane/az3/el0': ['n02690373_4.JPEG'],
        'aeroplane/az4/el0': ['n02690373_5.JPEG'],
        'car/az0/el0': ['2008_000050.jpg', '2008_000050.jpg', 'n02814533_1.JPEG'],
        'car/az1/el0': ['n02814533_2.JPEG'],
        'car/az2/el1': ['n02814533_3.JPEG'],
        'car/az3/el0': ['2008_000027.jpg', '2008_000027.jpg'],
        'car/az5/el2': ['n02814533_4.JPEG'],
    }
    # The j-th image of each azimuth bin, in list order (ImageNet train, val, then PASCAL).
    assert groups(view, data) == {
        'aeroplane/0': ['n02690373_1.JPEG', 'n02690373_4.JPEG', 'n02690373_5.JPEG'],
        'aeroplane/1': ['n02690373_2.JPEG'], 'aeroplane/2': ['n02690373_3.JPEG'],
        'aeroplane/3': ['2008_000033.jpg'], 'aeroplane/4': ['2008_000037.jpg'],
        'car/0': ['2008_000027.jpg', 'n02814533_1.JPEG', 'n02814533_2.JPEG',
                  'n02814533_3.JPEG', 'n02814533_4.JPEG'],
        'car/1': ['2008_000027.jpg', '2008_000050.jpg'], 'car/2': ['2008_000050.jpg'],
    }
    assert set(instance.targets) == {'aeroplane', 'car'}
    car_boxes = data.images.boxes[np.array(instance.targets) == 'car']
    np.testing.assert_allclose(car_boxes, [[3, 4, 37, 29]] * len(car_boxes))
    data.check()
    # The authors' own PASCAL list, when present, picks the objects instead of the scan.
    (root / 'Image_sets' / 'aeroplane_pascal.txt').write_text('2008_000037 0\n')
    listed = read_dataset('pascal3d', str(root))
    assert sum(p.endswith('_pascal/2008_000033.jpg') for p in listed.images.paths) == 0
    (root / 'Image_sets' / 'aeroplane_pascal.txt').write_text('2008_000033 1\n')
    with pytest.raises(UserError, match='2008_000033.mat has no object 1 with a viewpoint'):
        read_dataset('pascal3d', str(root))


def test_pascal3d_bad_layout(tmp_path, invariance_trees):
    with pytest.raises(UserError, match='Image_sets'):
        read_dataset('pascal3d', str(tmp_path))
    root = invariance_trees.pascal3d_tree(tmp_path)
    (root / 'Annotations' / 'car_imagenet' / 'n02814533_2.mat').write_text('not a mat file')
    with pytest.raises(UserError, match='cannot read annotation .*n02814533_2.mat'):
        read_dataset('pascal3d', str(root))


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


def test_empty_crop_box_is_one_line_error(tmp_path):
    path = tmp_path / 'photo.png'
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    with pytest.raises(UserError, match=r'empty crop box .*\(4, 2, -3, 5\) for image .*photo.png'):
        load_image(str(path), 8, box=(4, 2, -3, 5))   # a Pascal3D+ bbox with x2 < x1
