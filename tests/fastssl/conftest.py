"""Fixtures of the fastssl tests: small dataset trees in the exact on-disk formats of GOT-10k
(train split), ALOI (png2) and Pascal3D+ release 1.1, and the generic layout, made of real
photographs from skimage.data (``invariance_trees``)."""
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'immunohistochemistry')


def photo(index, size=(64, 48)):
    """Real photo ``index`` (mod the list), resized to ``size`` (w, h), RGB uint8."""
    from skimage import data
    image = getattr(data, PHOTOS[index % len(PHOTOS)])()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def save(path, pixels):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=92)
    return str(path)


# GOT-10k: (sequence, object class, cover level per frame). seq 2 spans only 3 levels.
GOT_SEQUENCES = (
    ('GOT-10k_Train_000001', 'red fox', (8, 8, 3, 2, 5, 8, 3)),
    ('GOT-10k_Train_000002', 'car', (8, 7, 6, 8, 5)),
    ('GOT-10k_Train_000003', 'car', (1, 8, 8, 4, 1, 6)),
    ('GOT-10k_Train_000004', 'red fox', (0, 4, 4, 8)),
)


def got10k_tree(root):
    root = Path(root) / 'train'
    for s, (name, cls, cover) in enumerate(GOT_SEQUENCES):
        folder = root / name
        boxes = []
        for i in range(len(cover)):
            pixels = np.roll(photo(s), 3 * i, axis=1)   # the object "moves"
            save(folder / f'{i + 1:08d}.jpg', pixels)
            boxes.append(f'{4 + i:.4f},{5.5:.4f},{30 + i:.4f},{20.25:.4f}')
        (folder / 'groundtruth.txt').write_text('\n'.join(boxes) + '\n')
        (folder / 'cover.label').write_text('\n'.join(map(str, cover)) + '\n')
        (folder / 'absence.label').write_text('\n'.join('0' for _ in cover) + '\n')
        (folder / 'cut_by_image.label').write_text('\n'.join('0' for _ in cover) + '\n')
        (folder / 'meta_info.ini').write_text(
            f'[METAINFO]\nurl: https://example.invalid/{s}\nbegin: 00:00:00\n'
            f'end: 00:00:10\nanno_fps: 10Hz\nobject_class: {cls}\nmotion_class: running\n'
            f'major_class: animal\nroot_class: animal\nmotion_adverb: slowly\n'
            f'resolution: (64, 48)\n')
    (root / 'list.txt').write_text('\n'.join(s[0] for s in GOT_SEQUENCES) + '\n')
    return root.parent


ALOI_NAMES = {'view': ('r0', 'r5', 'r10', 'r355'), 'col': ('i110', 'i120', 'i250'),
              'ill': ('l1c1', 'l2c1', 'l8c3')}


def aloi_tree(root, layout, objects=(1, 2, 3, 12)):
    """``root/png2/<obj>/<obj>_<suffix>.png`` as in the aloi_red2_<layout> tar."""
    png2 = Path(root) / 'png2'
    for obj in objects:
        for k, suffix in enumerate(ALOI_NAMES[layout]):
            pixels = (photo(obj) * (0.6 + 0.1 * k)).astype(np.uint8)
            save(png2 / str(obj) / f'{obj}_{suffix}.png', pixels)
    return Path(root)


def write_record(path, objects):
    """A Pascal3D+ annotation: MATLAB struct ``record`` with ``objects`` (class, bbox,
    viewpoint struct with azimuth_coarse/elevation_coarse, or empty)."""
    from scipy.io import savemat
    array = np.zeros((1, len(objects)), dtype=[('class', 'O'), ('bbox', 'O'), ('truncated', 'O'),
                                                ('viewpoint', 'O')])
    for i, (cls, bbox, view) in enumerate(objects):
        array[0, i]['class'] = cls
        array[0, i]['bbox'] = np.array(bbox, dtype=np.float64)
        array[0, i]['truncated'] = 0
        array[0, i]['viewpoint'] = np.zeros((0, 0)) if view is None else {
            'azimuth_coarse': float(view[0]), 'elevation_coarse': float(view[1]),
            'azimuth': float(view[0]) + 0.5, 'elevation': float(view[1]), 'distance': 5.0,
            'theta': 0.0}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {'record': {'filename': os.path.basename(path)[:-4], 'objects': array}})


# category -> ImageNet (train, val) entries [(name, azimuth, elevation)], PASCAL images
# [(name, [(class, azimuth, elevation) or (class, None)])]
PASCAL3D = {
    'aeroplane': ([('n02690373_1', 10, 5), ('n02690373_2', 200, 40)],
                  [('n02690373_3', 15, -10), ('n02690373_4', 100, 20), ('n02690373_5', 130, 0)],
                  [('2008_000033', [('aeroplane', 25, 10), ('person', None),
                                    ('aeroplane', None)]),
                   ('2008_000037', [('aeroplane', 190, 3)])]),
    'car': ([('n02814533_1', 0, 0), ('n02814533_2', 45, 0), ('n02814533_3', 60, 30)],
            [('n02814533_4', 350, 80)],
            [('2008_000027', [('car', 95, 10), ('car', 100, 12)]),
             ('2008_000050', [('car', 5, 2), ('car', 20, 4)])]),
}


def pascal3d_tree(root):
    root = Path(root) / 'PASCAL3D+_release1.1'
    box = (3.0, 4.0, 40.0, 33.0)
    k = 0
    for cat, (train, val, pascal) in PASCAL3D.items():
        for split, entries in (('train', train), ('val', val)):
            (root / 'Image_sets').mkdir(parents=True, exist_ok=True)
            (root / 'Image_sets' / f'{cat}_imagenet_{split}.txt').write_text(
                ''.join(f'{name}\n' for name, _, _ in entries))
            for name, az, el in entries:
                save(root / 'Images' / f'{cat}_imagenet' / f'{name}.JPEG', photo(k))
                write_record(root / 'Annotations' / f'{cat}_imagenet' / f'{name}.mat',
                             [(cat, box, (az, el))])
                k += 1
        for name, objects in pascal:
            save(root / 'Images' / f'{cat}_pascal' / f'{name}.jpg', photo(k))
            write_record(root / 'Annotations' / f'{cat}_pascal' / f'{name}.mat',
                         [(c, box, None if view[0] is None else view)
                          for c, *view in objects])
            k += 1
    return root


def folder_tree(root, targets=('cat', 'dog'), sets=2, images=3):
    """``root/<target>/<set>/<image>.png`` of real photos."""
    for t, target in enumerate(targets):
        for s in range(sets):
            for i in range(images):
                save(Path(root) / target / f'set{s}' / f'{i}.png', photo(t * sets + s + i))
    return Path(root)


@pytest.fixture(scope='session')
def invariance_trees():
    """The tree builders and what they plant: ``got10k_tree(root)`` (``GOT_SEQUENCES``),
    ``aloi_tree(root, layout)`` (file suffixes ``ALOI_NAMES[layout]``), ``pascal3d_tree(root)``
    (``PASCAL3D``), ``folder_tree(root, targets, sets, images)``."""
    return SimpleNamespace(got10k_tree=got10k_tree, aloi_tree=aloi_tree,
                           pascal3d_tree=pascal3d_tree, folder_tree=folder_tree,
                           GOT_SEQUENCES=GOT_SEQUENCES, ALOI_NAMES=ALOI_NAMES, PASCAL3D=PASCAL3D)
