"""Rendered data from ``writers/render_invariance_sets.py``: one measurement per
(transformation, magnitude level), read from ``ROOT/manifest.json``; every image once.

Every field the measurements use is checked here, so that a damaged or hand-edited manifest
is one line naming it, not a failure deep in the feature extraction: ``size`` a whole number
of pixels, from the smallest side a ResNet is evaluated at to the largest the renderer makes;
at least one transformation, each with at least one level; a magnitude a finite number or
null; each set a ``set`` and a ``target`` name and a list of image paths.
"""
import json
import os

import numpy as np

from fastssl.config import RESOLUTION_MIN
from fastssl_common.errors import UserError
from fastssl_common.formats import (
    RENDERED_FORMAT,
    RENDERED_LABEL,
    RENDERED_MANIFEST,
    RENDERED_SIZE_MAX,
)
from fastssl_common.numbers import is_number

from .sets import ImageList, InvarianceData, Measurement, require_file


def read_rendered(root):
    path = require_file(os.path.join(root, RENDERED_MANIFEST),
                        f'{RENDERED_LABEL} (writers/render_invariance_sets.py output)')
    try:
        with open(path, encoding='utf-8-sig') as f:
            manifest = json.load(f)
        if manifest.get('format') != RENDERED_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, not {RENDERED_FORMAT!r}")
        size = manifest['size']
        if not (is_number(size, integer=True) and RESOLUTION_MIN <= size <= RENDERED_SIZE_MAX):
            raise ValueError(f'size is {size!r}, not a whole number of pixels from '
                             f'{RESOLUTION_MIN} to {RENDERED_SIZE_MAX}')
        if not manifest['transformations']:
            raise ValueError('transformations is empty: there is nothing to measure')
        rows = {}
        measurements = []
        # Inside the try: a malformed entry (missing key, wrong type) is the same one-line error.
        for transformation, entry in manifest['transformations'].items():
            if not entry['levels']:
                raise ValueError(f'transformation {transformation!r} has no levels')
            for level in entry['levels']:
                measurements.append(_measurement(transformation, entry, level, rows))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f'{path} is not a {RENDERED_LABEL} manifest '
                        f'({type(err).__name__}: {err})') from None
    paths = [os.path.join(root, relative) for relative in rows]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f'{RENDERED_LABEL}: {missing[0]} is listed in {path} but missing '
                        f'({len(missing)} missing in all)')
    return InvarianceData(RENDERED_LABEL, root, ImageList(paths, size), measurements,
                          rendered=True)


def _measurement(transformation, entry, level, rows):
    """One magnitude level as a Measurement; its images get row numbers in ``rows`` (a dict
    of relative path -> row, first seen first, shared by all levels)."""
    magnitude = level['magnitude']
    if magnitude is not None and not is_number(magnitude):
        raise ValueError(f'transformation {transformation!r} has a level of magnitude '
                         f'{magnitude!r}, not a finite number or null')
    picked, set_ids, targets = [], [], []
    for s in level['sets']:
        names, images = (s['set'], s['target']), s['images']
        if not (all(isinstance(n, str) for n in names) and isinstance(images, list)
                and all(isinstance(r, str) for r in images)):
            raise ValueError(f'transformation {transformation!r} has a set that is not '
                             f"{{'set': name, 'target': name, 'images': [paths]}}: "
                             f'{str(s)[:80]}')
        for relative in images:
            picked.append(rows.setdefault(relative, len(rows)))
            set_ids.append(s['set'])
            targets.append(s['target'])
    name = transformation if magnitude is None else f'{transformation} {magnitude:g}'
    return Measurement(name, np.array(picked), set_ids, targets, transformation, magnitude,
                       entry.get('unit', ''))
