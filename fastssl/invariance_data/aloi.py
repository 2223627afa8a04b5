"""ALOI (Amsterdam Library of Object Images), the ``png2`` trees of the half-resolution
("red2") releases: **viewpoint** (``aloi_red2_view``: ``<obj>/<obj>_r<angle>.png``),
**illumination colour** (``aloi_red2_col``: ``<obj>/<obj>_i<colour temperature>.png``) and
**illumination direction** (``aloi_red2_ill``: ``<obj>/<obj>_l<lamp>c<camera>.png``).

ROOT is the ``png2`` folder (or the folder holding it): one folder per object, named by its
number (1..1000). Protocol: every image of an object, whole, resized to 128 x 128;
set = target = object (so with 1000 objects p = 95).
"""
import os
import re

import numpy as np

from fastssl_common.errors import UserError

from .sets import ImageList, InvarianceData, Measurement, require_dir, visible_entries

SIZE = 128
# transformation -> (measurement name, file-name pattern after '<obj>_', an example)
LAYOUTS = {
    'view': ('viewpoint', r'r\d+', 'r0'),
    'col': ('illumination colour', r'i\d+', 'i110'),
    'ill': ('illumination direction', r'l\dc\d', 'l1c1'),
}


def read_aloi_view(root):
    return read_aloi(root, 'view')


def read_aloi_col(root):
    return read_aloi(root, 'col')


def read_aloi_ill(root):
    return read_aloi(root, 'ill')


def read_aloi(root, layout):
    name, suffix, example = LAYOUTS[layout]
    what = f'ALOI {name} (aloi_red2_{layout})'
    if os.path.isdir(os.path.join(root, 'png2')):
        root = os.path.join(root, 'png2')
    require_dir(root, what)
    objects = [n for n in visible_entries(root) if os.path.isdir(os.path.join(root, n))]
    numbered = sorted((n for n in objects if n.isdigit()), key=int)
    if not numbered:
        raise UserError(f'{what}: expected one folder per object named by its number in '
                        f'{root} (e.g. {root}/1/1_{example}.png)')
    paths, objs = [], []
    for obj in numbered:
        pattern = re.compile(rf'{obj}_{suffix}\.png')
        folder = os.path.join(root, obj)
        for file in visible_entries(folder):
            if not pattern.fullmatch(file):
                raise UserError(f'{what}: {folder}/{file} is not named like '
                                f'{obj}_{example}.png (is this the aloi_red2_{layout} tree?)')
            paths.append(os.path.join(folder, file))
            objs.append(int(obj))
    images = ImageList(paths, SIZE)
    objs = np.array(objs)
    return InvarianceData('ALOI', root, images,
                          [Measurement(name, np.arange(len(paths)), objs, objs)])
