"""fastssl/invariance_data/pascal3d.py on a Pascal3D+ release 1.1 tree: the instance and
viewpoint+instance sets, binned by hand; bad layouts as one clear error."""
import os

import numpy as np
import pytest

from fastssl.invariance_data import read_dataset
from fastssl_common.errors import UserError


def groups(measurement, data):
    """{set id: sorted image names} of a measurement."""
    out = {}
    for row, z in zip(measurement.rows, measurement.set_ids):
        out.setdefault(str(z), []).append(os.path.basename(data.images.paths[row]))
    return {k: sorted(v) for k, v in out.items()}


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


def test_image_lists_with_a_byte_order_mark_or_not_utf8(tmp_path, invariance_trees):
    root = invariance_trees.pascal3d_tree(tmp_path)
    expected = read_dataset('pascal3d', str(root)).images.paths
    listing = root / 'Image_sets' / 'car_imagenet_train.txt'
    text = listing.read_bytes()
    listing.write_bytes(b'\xef\xbb\xbf' + text)   # the mark is not part of the first name
    assert read_dataset('pascal3d', str(root)).images.paths == expected
    listing.write_bytes(text + b'n02814533_\xff\n')
    with pytest.raises(UserError, match=r'car_imagenet_train.txt line \d+ is not UTF-8 text '
                                        r'\(byte 0xff\)'):
        read_dataset('pascal3d', str(root))
