"""Pascal3D+ release 1.1, read for **instance** and **viewpoint + instance** invariance.

Layout (``PASCAL3D+_release1.1``): ``Image_sets/<cat>_imagenet_train.txt`` and
``<cat>_imagenet_val.txt`` (image names), ``Images/<cat>_imagenet/<name>.JPEG``,
``Images/<cat>_pascal/<name>.jpg``, ``Annotations/<cat>_{imagenet,pascal}/<name>.mat`` (MATLAB
``record`` with ``objects(i).class``, ``.bbox`` = [x1 y1 x2 y2], ``.viewpoint.azimuth_coarse``
and ``.elevation_coarse``). The categories are those with an ``_imagenet_train.txt`` list.

Protocol (the authors'): per category its ImageNet images (train list, then val list; the
first object of each annotation), then its PASCAL images; each box crop resized to 224 x 224.
Azimuth bin = (azimuth mod 180) // 30, elevation bin = (elevation mod 90) // 30.
*instance*: a set is all images of one category in one (azimuth, elevation) bin.
*viewpoint+instance*: a set is the j-th image of each azimuth bin of one category.
Target = category.

Which PASCAL objects: the authors used a list of their own (``Image_sets/<cat>_pascal.txt``,
lines ``<name> <object index>``) that the release does not ship. When that file is present it
is used; otherwise every object of the category with a viewpoint annotation in
``Annotations/<cat>_pascal/*.mat`` (files and objects in order).
"""
import os

import numpy as np

from fastssl_common.errors import UserError

from .sets import ImageList, InvarianceData, Measurement, require_dir, require_file, text_lines

SIZE = 224
WHAT = 'Pascal3D+ release 1.1'


def read_pascal3d(root):
    sets_dir = require_dir(os.path.join(root, 'Image_sets'), WHAT)
    suffix = '_imagenet_train.txt'
    categories = sorted(n[:-len(suffix)] for n in os.listdir(sets_dir) if n.endswith(suffix))
    if not categories:
        raise UserError(f'{WHAT}: expected {sets_dir}/<category>{suffix} files')
    paths, boxes, azimuth, elevation, cats = [], [], [], [], []
    for cat in categories:
        for path, obj in _imagenet_entries(root, cat) + _pascal_entries(root, cat):
            box, az, el = _geometry(obj)
            paths.append(path)
            boxes.append(box)
            azimuth.append(az)
            elevation.append(el)
            cats.append(cat)
    if not paths:
        raise UserError(f'{WHAT} ({root}): no annotated images in the image lists')
    az_bin = (np.array(azimuth) % 180) // 30
    el_bin = (np.array(elevation) % 90) // 30
    cats = np.array(cats)
    instance_sets = [f'{c}/az{int(a)}/el{int(e)}' for c, a, e in zip(cats, az_bin, el_bin)]
    rank = np.zeros(len(paths), dtype=np.int64)   # j: rank of the image within its az bin
    seen = {}
    for i, key in enumerate(zip(cats, az_bin)):
        rank[i] = seen.get(key, 0)
        seen[key] = rank[i] + 1
    view_sets = [f'{c}/{j}' for c, j in zip(cats, rank)]
    rows = np.arange(len(paths))
    images = ImageList(paths, SIZE, np.array(boxes, dtype=np.float64))
    return InvarianceData('Pascal3D+', root, images, [
        Measurement('instance', rows, instance_sets, cats),
        Measurement('viewpoint+instance', rows, view_sets, cats),
    ])


def _imagenet_entries(root, cat):
    out = []
    for split in ('train', 'val'):
        listing = require_file(os.path.join(root, 'Image_sets', f'{cat}_imagenet_{split}.txt'),
                               WHAT)
        for name in _lines(listing):
            ann = os.path.join(root, 'Annotations', f'{cat}_imagenet', f'{name}.mat')
            out.append((os.path.join(root, 'Images', f'{cat}_imagenet', f'{name}.JPEG'),
                        _object(ann, 0, cat)))
    return out


def _pascal_entries(root, cat):
    ann_dir = os.path.join(root, 'Annotations', f'{cat}_pascal')
    image = os.path.join(root, 'Images', f'{cat}_pascal', '{}.jpg')
    listing = os.path.join(root, 'Image_sets', f'{cat}_pascal.txt')
    if os.path.isfile(listing):
        out = []
        for line in _lines(listing):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise UserError(f"{WHAT}: {listing} line {line!r} is not '<name> <object>'")
            ann = os.path.join(ann_dir, f'{parts[0]}.mat')
            out.append((image.format(parts[0]), _object(ann, int(parts[1]), cat)))
        return out
    if not os.path.isdir(ann_dir):
        return []
    out = []
    for file in sorted(f for f in os.listdir(ann_dir) if f.endswith('.mat')):
        ann = os.path.join(ann_dir, file)
        out += [(image.format(file[:-4]), obj) for obj in _objects(ann)
                if getattr(obj, 'class', None) == cat and _has_viewpoint(obj)]
    return out


def _lines(path):
    return [line.strip() for line in text_lines(path, WHAT) if line.strip()]


def _objects(path):
    from scipy.io import loadmat
    require_file(path, WHAT)
    try:
        record = loadmat(path, struct_as_record=False, squeeze_me=True)['record']
        return list(np.atleast_1d(record.objects))
    except Exception as err:  # scipy raises many types for a corrupt or foreign .mat
        raise UserError(f'{WHAT}: cannot read annotation {path} as a Pascal3D+ record '
                        f'({type(err).__name__}: {str(err)[:80]})') from None


def _has_viewpoint(obj):
    view = getattr(obj, 'viewpoint', None)
    return hasattr(view, 'azimuth_coarse') and hasattr(view, 'elevation_coarse')


def _object(path, index, cat):
    objects = _objects(path)
    if index >= len(objects) or not _has_viewpoint(objects[index]):
        raise UserError(f'{WHAT}: {path} has no object {index} with a viewpoint (category '
                        f'{cat})')
    return objects[index]


def _geometry(obj):
    """-> ((x, y, w, h) box, coarse azimuth, coarse elevation) of an annotated object."""
    x1, y1, x2, y2 = np.asarray(obj.bbox, dtype=np.float64).reshape(4)
    return ((x1, y1, x2 - x1, y2 - y1), float(obj.viewpoint.azimuth_coarse),
            float(obj.viewpoint.elevation_coarse))
