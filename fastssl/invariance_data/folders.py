"""The generic layout ``ROOT/<target>/<set>/<image>``: measure any invariance you can collect.

Each ``<set>`` folder holds images of one thing that differ only by the transformation of
interest; ``<target>`` is the class the invariance is conditioned on (use one set per target,
named like it, for the ALOI-style set = target). Whole images, resized to 224 x 224.
"""
import os
import sys

import numpy as np

from fastssl_common.errors import UserError, not_a_file
from fastssl_common.images import IMAGE_EXTENSIONS, is_image_name

from .sets import ImageList, InvarianceData, Measurement, require_dir, visible_entries

SIZE = 224
LAYOUT = 'ROOT/<target>/<set>/<image>'


def read_folders(root, name='sets'):
    images = folder_images(root)
    paths, set_ids, targets = zip(*images)
    return InvarianceData('folders', root, ImageList(list(paths), SIZE),
                          [Measurement(name, np.arange(len(paths)), set_ids, targets)])


def folder_images(root):
    """[(path, '<target>/<set>', target)] for every image of ``root`` in the generic layout;
    UserError naming the first entry that does not fit it."""
    require_dir(root, f'invariance sets ({LAYOUT})')
    found, empty = [], []
    for target in visible_entries(root):
        target_dir = _subfolder(root, target)
        sets = visible_entries(target_dir)
        if not sets:
            empty.append(target_dir)
        for set_name in sets:
            set_dir = _subfolder(target_dir, set_name)
            files = visible_entries(set_dir)
            if not files:
                empty.append(set_dir)
            for file in files:
                path = os.path.join(set_dir, file)
                if not is_image_name(file):
                    raise UserError(f"{path} is not an image file ({', '.join(IMAGE_EXTENSIONS)}"
                                    f"); expected the layout {LAYOUT}")
                problem = not_a_file(path)
                if problem:       # a link to nothing, a folder or a pipe named like an image
                    raise UserError(f'{path} {problem}; expected the layout {LAYOUT}')
                found.append((path, f'{target}/{set_name}', target))
    if not found:
        raise UserError(f'{root} holds no images; expected the layout {LAYOUT}')
    if empty:     # a target without images is not among the targets the score averages over
        shown = ', '.join(empty[:3]) + (', ...' if len(empty) > 3 else '')
        print(f'note: {len(empty)} empty folder(s) of {root} left out: {shown}', file=sys.stderr)
    return found


def _subfolder(parent, name):
    path = os.path.join(parent, name)
    if not os.path.isdir(path):
        raise UserError(f'{path} is not a folder; expected the layout {LAYOUT}')
    return path
