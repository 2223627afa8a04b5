"""fastssl/invariance_data/rendered.py on a manifest written here by hand: one measurement per
(transformation, magnitude level), every image once, and a bad manifest or a missing image as
one clear error. (The writer's own manifests are read back in tests/fastssl_common.)"""
import json
import re

import numpy as np
import pytest
from PIL import Image

from fastssl.invariance_data import read_dataset
from fastssl.invariance_data.rendered import read_rendered
from fastssl_common.errors import UserError
from fastssl_common.formats import RENDERED_FORMAT, RENDERED_LABEL, RENDERED_MANIFEST


def level(magnitude, images):
    """One magnitude level: a set of three images per target."""
    return {'magnitude': magnitude, 'sets': [
        {'set': f'{target}/{magnitude}', 'target': target,
         'images': [f'{target}/{name}.png' for name in names]}
        for target, names in images.items()]}


def write_tree(root, manifest=None):
    for target in ('cat', 'dog'):
        (root / target).mkdir(parents=True, exist_ok=True)
        for name in ('a', 'b', 'c', 'd'):
            Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(root / target / f'{name}.png')
    manifest = manifest or {
        'format': RENDERED_FORMAT, 'label': RENDERED_LABEL, 'size': 32,
        'transformations': {
            'viewpoint': {'unit': 'degrees', 'levels': [
                level(15, {'cat': 'abc', 'dog': 'abc'}),
                level(30, {'cat': 'bcd', 'dog': 'abc'})]},
            'occlusion': {'levels': [level(None, {'cat': 'abd', 'dog': 'bcd'})]}}}
    (root / RENDERED_MANIFEST).write_text(json.dumps(manifest))
    return root


def test_one_measurement_per_level_and_every_image_once(tmp_path):
    root = write_tree(tmp_path / 'sets')
    data = read_dataset('rendered', str(root))
    assert data.rendered and data.dataset == RENDERED_LABEL and data.root == str(root)
    assert data.images.size == 32 and data.images.boxes is None
    # rows are numbered in first-seen order; an image in several levels is listed once
    relative = [p[len(str(root)) + 1:] for p in data.images.paths]
    assert relative == ['cat/a.png', 'cat/b.png', 'cat/c.png', 'dog/a.png', 'dog/b.png',
                        'dog/c.png', 'cat/d.png', 'dog/d.png']
    first, second, occlusion = data.measurements
    assert [m.name for m in data.measurements] == ['viewpoint 15', 'viewpoint 30', 'occlusion']
    assert (first.transformation, first.magnitude, first.unit) == ('viewpoint', 15, 'degrees')
    assert (occlusion.transformation, occlusion.magnitude, occlusion.unit) == \
        ('occlusion', None, '')
    assert [relative[r] for r in second.rows] == ['cat/b.png', 'cat/c.png', 'cat/d.png',
                                                  'dog/a.png', 'dog/b.png', 'dog/c.png']
    assert second.set_ids.tolist() == ['cat/30'] * 3 + ['dog/30'] * 3
    assert second.targets.tolist() == ['cat'] * 3 + ['dog'] * 3
    data.check()


def first_set(m):
    return m['transformations']['viewpoint']['levels'][0]['sets'][0]


@pytest.mark.parametrize('change, complaint', [
    (lambda m: m.update(format='something-else/1'),
     r"ValueError: format is 'something-else/1', not 'fastssl-rendered-invariance/1'"),
    (lambda m: m['transformations']['viewpoint']['levels'][0].pop('sets'),
     "ValueError: a level of transformation 'viewpoint' has no 'sets'"),
    # each of these read as Python's error ("string indices must be integers", "'list' object
    # has no attribute 'get'", "KeyError: 'size'")
    (lambda m: m['transformations']['viewpoint'].update(levels='abc'),
     "ValueError: 'levels' of transformation 'viewpoint' is a JSON string, not a JSON array"),
    (lambda m: m.clear() or m.update(format=RENDERED_FORMAT),
     "ValueError: the manifest has no 'size'"),
    (lambda m: m['transformations']['viewpoint']['levels'][0].pop('magnitude'),
     "ValueError: a level of transformation 'viewpoint' has no 'magnitude'"),
    # two columns of one name: the table showed one of them, the JSON both under one name
    (lambda m: m['transformations']['viewpoint']['levels'][1].update(magnitude=15),
     "ValueError: transformation 'viewpoint' has two levels of magnitude 15"),
    # one image three times was scored as a set of three
    (lambda m: first_set(m).update(images=['cat/a.png'] * 3),
     "ValueError: set 'cat/15' of transformation 'viewpoint' lists 'cat/a.png' twice"),
    (lambda m: first_set(m)['images'].append('/etc/passwd'),
     "ValueError: set 'cat/15' of transformation 'viewpoint' lists '/etc/passwd', which is not "
     "a path inside the folder of the manifest"),
    (lambda m: first_set(m)['images'].append('../sets/cat/d.png'),
     "ValueError: set 'cat/15' of transformation 'viewpoint' lists '../sets/cat/d.png', which"),
    # nothing to measure: feature extraction would fail on no images at all
    (lambda m: m.update(transformations={}),
     'ValueError: transformations is empty: there is nothing to measure'),
    (lambda m: m['transformations']['occlusion'].update(levels=[]),
     "ValueError: transformation 'occlusion' has no levels"),
    # a size Pillow cannot resize to, or one a ResNet is not evaluated at
    (lambda m: m.update(size=0), 'ValueError: size is 0, not a whole number of pixels from 32 '
     'to 1024'),
    (lambda m: m.update(size=100000), 'ValueError: size is 100000, not a whole number of '
     'pixels from 32 to 1024'),
    (lambda m: m.update(size=-8), 'ValueError: size is -8, not a whole number of pixels'),
    (lambda m: m.update(size=40.5), 'ValueError: size is 40.5, not a whole number of pixels'),
    (lambda m: m.update(size=16), 'ValueError: size is 16, not a whole number of pixels from 32'),
    (lambda m: m.update(size='large'), "ValueError: size is 'large', not a whole number"),
    (lambda m: m.update(size=True), 'ValueError: size is True, not a whole number'),
    (lambda m: m['transformations']['viewpoint']['levels'][1].update(magnitude='wide'),
     "ValueError: transformation 'viewpoint' has a level of magnitude 'wide', not a finite "
     'number or null'),
    (lambda m: first_set(m).update(target=['cat']),
     "ValueError: transformation 'viewpoint' has a set that is not"),
    (lambda m: first_set(m).update(images='cat/a.png'),
     "ValueError: transformation 'viewpoint' has a set that is not"),
    (lambda m: first_set(m)['images'].append(7),
     "ValueError: transformation 'viewpoint' has a set that is not"),
])
def test_a_malformed_manifest_is_one_line(tmp_path, change, complaint):
    root = write_tree(tmp_path / 'sets')
    manifest = json.loads((root / RENDERED_MANIFEST).read_text())
    change(manifest)
    (root / RENDERED_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=rf'manifest.json is not a rendered data manifest '
                                        rf'\({re.escape(complaint)}'):
        read_rendered(str(root))


def test_a_manifest_saved_with_a_byte_order_mark_is_read(tmp_path):
    manifest = write_tree(tmp_path / 'sets') / RENDERED_MANIFEST
    manifest.write_bytes(b'\xef\xbb\xbf' + manifest.read_bytes())   # as Notepad saves it
    assert len(read_rendered(str(manifest.parent)).measurements) == 3


def test_missing_manifest_and_missing_images(tmp_path):
    with pytest.raises(UserError, match=r'rendered data .*: expected the file .*manifest.json'):
        read_rendered(str(tmp_path))
    root = write_tree(tmp_path / 'sets')
    (root / 'cat' / 'c.png').unlink()
    (root / 'dog' / 'a.png').unlink()
    with pytest.raises(UserError, match=r'rendered data: .*cat/c.png is listed in .*manifest.json '
                                        r'but missing \(2 missing in all\)'):
        read_rendered(str(root))
