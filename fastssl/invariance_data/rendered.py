"""Rendered data from ``writers/render_invariance_sets.py``: one measurement per
(transformation, magnitude level), read from ``ROOT/manifest.json``; every image once.

Every field the measurements use is checked here, so that a damaged or hand-edited manifest
is one line naming it, not a failure deep in the feature extraction: ``size`` a whole number
of pixels, from the smallest side a ResNet is evaluated at to the largest the renderer makes;
at least one transformation, each with at least one level, no two of one magnitude; a
magnitude a finite number or null; each set a ``set`` and a ``target`` name and a list of
image paths inside ROOT, none listed twice.
"""
import json
import os
from collections import Counter

import numpy as np

from fastssl.config import RESOLUTION_MIN
from fastssl_common.errors import UserError
from fastssl_common.formats import (
    JSON_NAMES,
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
        _expect(manifest, dict, 'the manifest')
        if manifest.get('format') != RENDERED_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, not {RENDERED_FORMAT!r}")
        size = _entry(manifest, 'size', object, 'the manifest')
        if not (is_number(size, integer=True) and RESOLUTION_MIN <= size <= RENDERED_SIZE_MAX):
            raise ValueError(f'size is {size!r}, not a whole number of pixels from '
                             f'{RESOLUTION_MIN} to {RENDERED_SIZE_MAX}')
        transformations = _entry(manifest, 'transformations', dict, 'the manifest')
        if not transformations:
            raise ValueError('transformations is empty: there is nothing to measure')
        rows = {}
        measurements = []
        for transformation, entry in transformations.items():
            where = f'transformation {transformation!r}'
            levels = _entry(_expect(entry, dict, where), 'levels', list, where)
            if not levels:
                raise ValueError(f'{where} has no levels')
            for level in levels:
                measurements.append(_measurement(transformation, entry, level, rows))
            magnitudes = [m.magnitude for m in measurements[-len(levels):]]
            twice = next((m for m in magnitudes if magnitudes.count(m) > 1), False)
            if twice is not False:     # one column, one JSON name for two measurements
                raise ValueError(f'{where} has two levels of magnitude {twice!r}')
    except (OSError, ValueError) as err:
        raise UserError(f'{path} is not a {RENDERED_LABEL} manifest '
                        f'({type(err).__name__}: {err})') from None
    paths = [os.path.join(root, relative) for relative in rows]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f'{RENDERED_LABEL}: {missing[0]} is listed in {path} but missing '
                        f'({len(missing)} missing in all)')
    return InvarianceData(RENDERED_LABEL, root, ImageList(paths, size), measurements,
                          rendered=True)


def _expect(value, kind, what):
    """``value`` when it is a ``kind``; else ValueError naming ``what``."""
    if not isinstance(value, kind):
        raise ValueError(f'{what} is a JSON {JSON_NAMES.get(type(value), type(value).__name__)}, '
                         f'not a JSON {JSON_NAMES[kind]}')
    return value


def _entry(mapping, key, kind, what):
    """``mapping[key]``, a ``kind`` (object: any); ValueError naming ``what`` and ``key``."""
    if key not in mapping:
        raise ValueError(f'{what} has no {key!r}')
    return mapping[key] if kind is object else _expect(mapping[key], kind, f'{key!r} of {what}')


def _measurement(transformation, entry, level, rows):
    """One magnitude level as a Measurement; its images get row numbers in ``rows`` (a dict
    of relative path -> row, first seen first, shared by all levels)."""
    where = f'transformation {transformation!r}'
    _expect(level, dict, f'a level of {where}')
    magnitude = _entry(level, 'magnitude', object, f'a level of {where}')
    if magnitude is not None and not is_number(magnitude):
        raise ValueError(f'{where} has a level of magnitude {magnitude!r}, not a finite number '
                         f'or null')
    picked, set_ids, targets = [], [], []
    for s in _entry(level, 'sets', list, f'a level of {where}'):
        if not isinstance(s, dict) or not {'set', 'target', 'images'} <= set(s):
            names, images = None, None
        else:
            names, images = (s['set'], s['target']), s['images']
        if not (names and all(isinstance(n, str) for n in names) and isinstance(images, list)
                and all(isinstance(r, str) for r in images)):
            raise ValueError(f'{where} has a set that is not '
                             f"{{'set': name, 'target': name, 'images': [paths]}}: "
                             f'{json.dumps(s)[:80]}')
        twice = next((r for r, n in Counter(images).items() if n > 1), None)
        if twice is not None:    # one image counted as several views of its set
            raise ValueError(f"set {s['set']!r} of {where} lists {twice!r} twice")
        for relative in images:
            # a path of ROOT's: an absolute one or '..' would measure images from elsewhere
            if os.path.isabs(relative) or '..' in relative.replace('\\', '/').split('/'):
                raise ValueError(f"set {s['set']!r} of {where} lists {relative!r}, which is "
                                 f'not a path inside the folder of the manifest')
            picked.append(rows.setdefault(relative, len(rows)))
            set_ids.append(s['set'])
            targets.append(s['target'])
    name = transformation if magnitude is None else f'{transformation} {magnitude:g}'
    return Measurement(name, np.array(picked), set_ids, targets, transformation, magnitude,
                       entry.get('unit', ''))
