"""GOT-10k train split, read for **occlusion** invariance (the authors' protocol).

Layout: ``ROOT/list.txt`` names the sequence folders; each holds frames ``00000001.jpg``, ...,
``groundtruth.txt`` (one ``x,y,w,h`` box per frame), ``cover.label`` (visible-ratio level
0-8 per frame) and ``meta_info.ini`` (``object_class: ...``). ROOT may also be the folder
above, holding ``train/list.txt``.

Protocol: keep sequences whose cover levels span at least 4 (max - min >= 4); for every
distinct cover level, in ascending order, pick one random frame of that level with NumPy's
legacy generator seeded 1992, drawn in ``list.txt`` order (so the authors' frames are picked
again). Each frame is cropped to its box and resized to 128 x 128. Set = sequence,
target = object class (spaces replaced by ``_``). Our one addition: frames whose box is empty
(w or h <= 0) are not candidates, since they cannot be cropped.
"""
import os

import numpy as np

from fastssl_common.errors import UserError

from .sets import ImageList, InvarianceData, Measurement, require_file

SIZE = 128
MIN_COVER_SPAN = 4
SEED = 1992


def read_got10k(root):
    if not os.path.isfile(os.path.join(root, 'list.txt')) and \
            os.path.isfile(os.path.join(root, 'train', 'list.txt')):
        root = os.path.join(root, 'train')
    listing = require_file(os.path.join(root, 'list.txt'), 'GOT-10k train split')
    with open(listing) as f:
        sequences = [line.strip() for line in f if line.strip()]
    if not sequences:
        raise UserError(f'GOT-10k: {listing} lists no sequences')
    rng = np.random.RandomState(SEED)  # the authors' np.random.seed(1992) + np.random.choice
    paths, boxes, set_ids, targets = [], [], [], []
    for name in sequences:
        folder = os.path.join(root, name)
        cls = object_class(os.path.join(folder, 'meta_info.ini'))
        seq_boxes = read_rows(os.path.join(folder, 'groundtruth.txt'), float, 4)
        cover = read_rows(os.path.join(folder, 'cover.label'), int, 1)[:, 0]
        if len(cover) != len(seq_boxes):
            raise UserError(f'GOT-10k: {folder}/cover.label has {len(cover)} levels for '
                            f'{len(seq_boxes)} boxes in groundtruth.txt')
        usable = (seq_boxes[:, 2] > 0) & (seq_boxes[:, 3] > 0)
        levels = np.unique(cover[usable])
        if levels.size == 0 or levels.max() - levels.min() < MIN_COVER_SPAN:
            continue
        for level in levels:
            frame = rng.choice(np.where((cover == level) & usable)[0])
            paths.append(os.path.join(folder, f'{frame + 1:08d}.jpg'))
            boxes.append(seq_boxes[frame])
            set_ids.append(name)
            targets.append(cls)
    if not paths:
        raise UserError(f"GOT-10k ({root}): no sequence's cover levels span at least "
                        f"{MIN_COVER_SPAN} (cover.label max - min)")
    images = ImageList(paths, SIZE, np.array(boxes, dtype=np.float64))
    occlusion = Measurement('occlusion', np.arange(len(paths)), set_ids, targets)
    return InvarianceData('GOT-10k', root, images, [occlusion])


def object_class(path):
    """``object_class`` of a ``meta_info.ini``, spaces as underscores (as the authors)."""
    require_file(path, 'GOT-10k sequence')
    with open(path) as f:
        for line in f.read().splitlines()[1:]:  # line 1 is the [METAINFO] header
            if 'object_class' in line and ': ' in line:
                return line.split(': ', 1)[1].strip().replace(' ', '_')
    raise UserError(f"GOT-10k: {path} has no 'object_class: ...' line")


def read_rows(path, kind, columns):
    """A text file of ``columns`` comma-separated numbers per line -> (rows, columns) array."""
    require_file(path, 'GOT-10k sequence')
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                values = [kind(float(v)) if kind is int else kind(v)
                          for v in line.strip().split(',')]
            except ValueError:
                values = []
            if len(values) != columns:
                raise UserError(f'GOT-10k: {path} line {number} is not {columns} '
                                f'comma-separated numbers: {line.strip()[:60]!r}')
            rows.append(values)
    return np.array(rows, dtype=np.float64 if kind is float else np.int64).reshape(-1, columns)
