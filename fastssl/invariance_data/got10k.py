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

GOT-10k marks an absent or fully hidden object in ``absence.label`` and with cover level 0, not
with its box, so a picked frame whose box lies entirely outside the frame is a damaged
annotation: refused, like a non-finite number, naming the file and row. The text files are
UTF-8 (GOT-10k's are ASCII); a leading byte-order mark is ignored.
"""
import math
import os

import numpy as np

from fastssl_common.errors import UserError

from .images import crop_problem, image_size
from .sets import ImageList, InvarianceData, Measurement, require_file, text_lines

SIZE = 128
MIN_COVER_SPAN = 4
SEED = 1992


def read_got10k(root):
    if not os.path.isfile(os.path.join(root, 'list.txt')) and \
            os.path.isfile(os.path.join(root, 'train', 'list.txt')):
        root = os.path.join(root, 'train')
    listing = require_file(os.path.join(root, 'list.txt'), 'GOT-10k train split')
    sequences = [line.strip() for line in text_lines(listing, 'GOT-10k') if line.strip()]
    if not sequences:
        raise UserError(f'GOT-10k: {listing} lists no sequences')
    rng = np.random.RandomState(SEED)  # the authors' np.random.seed(1992) + np.random.choice
    paths, boxes, set_ids, targets = [], [], [], []
    for name in sequences:
        folder = os.path.join(root, name)
        cls = object_class(os.path.join(folder, 'meta_info.ini'))
        truth = os.path.join(folder, 'groundtruth.txt')
        seq_boxes = read_rows(truth, float, 4)
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
            path = os.path.join(folder, f'{frame + 1:08d}.jpg')
            check_box(truth, frame, seq_boxes[frame], path)
            paths.append(path)
            boxes.append(seq_boxes[frame])
            set_ids.append(name)
            targets.append(cls)
    if not paths:
        raise UserError(f"GOT-10k ({root}): no sequence's cover levels span at least "
                        f"{MIN_COVER_SPAN} (cover.label max - min)")
    images = ImageList(paths, SIZE, np.array(boxes, dtype=np.float64))
    occlusion = Measurement('occlusion', np.arange(len(paths)), set_ids, targets)
    return InvarianceData('GOT-10k', root, images, [occlusion])


def check_box(truth, frame, box, path):
    """UserError naming row ``frame + 1`` of ``truth`` when its box cannot be cropped from the
    frame image ``path`` (read now, header only, so that it fails before any model loads)."""
    width, height = image_size(path)
    problem = crop_problem(box, width, height)
    if problem:
        x, y, w, h = box
        raise UserError(f'GOT-10k: {truth} row {frame + 1}: the box (x, y, w, h) = ({x:g}, '
                        f'{y:g}, {w:g}, {h:g}) is {problem} (frame {os.path.basename(path)}, '
                        f'{width} x {height})')


def object_class(path):
    """``object_class`` of a ``meta_info.ini``, spaces as underscores (as the authors)."""
    for line in text_lines(path, 'GOT-10k sequence')[1:]:  # line 1 is the [METAINFO] header
        if 'object_class' in line and ': ' in line:
            return line.split(': ', 1)[1].strip().replace(' ', '_')
    raise UserError(f"GOT-10k: {path} has no 'object_class: ...' line")


def read_rows(path, kind, columns):
    """A text file of ``columns`` comma-separated finite numbers per line -> (rows, columns)
    array of ``kind``; blank lines are skipped."""
    rows = []
    for number, line in enumerate(text_lines(path, 'GOT-10k sequence'), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.strip().split(',')]
        except ValueError:
            values = []
        if len(values) != columns:
            raise UserError(f'GOT-10k: {path} line {number} is not {columns} '
                            f'comma-separated numbers: {line.strip()[:60]!r}')
        if not all(math.isfinite(v) for v in values):  # inf would crop an endless box
            raise UserError(f'GOT-10k: {path} line {number} holds a non-finite number: '
                            f'{line.strip()[:60]!r}')
        rows.append(values)
    return np.array(rows, dtype=np.float64).astype(kind).reshape(-1, columns)
