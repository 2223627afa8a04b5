"""Rendered data from ``writers/render_invariance_sets.py``: one measurement per
(transformation, magnitude level), read from ``ROOT/manifest.json``; every image once."""
import json
import os

import numpy as np

from fastssl_common.errors import UserError
from fastssl_common.formats import RENDERED_FORMAT, RENDERED_LABEL, RENDERED_MANIFEST

from .sets import ImageList, InvarianceData, Measurement, require_file


def read_rendered(root):
    path = require_file(os.path.join(root, RENDERED_MANIFEST),
                        f'{RENDERED_LABEL} (writers/render_invariance_sets.py output)')
    try:
        with open(path) as f:
            manifest = json.load(f)
        if manifest.get('format') != RENDERED_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, not {RENDERED_FORMAT!r}")
        size = int(manifest['size'])
        rows = {}
        measurements = []
        # Inside the try: a malformed entry (missing key, wrong type) is the same one-line error.
        for transformation, entry in manifest['transformations'].items():
            for level in entry['levels']:
                picked, set_ids, targets = [], [], []
                for s in level['sets']:
                    for relative in s['images']:
                        picked.append(rows.setdefault(relative, len(rows)))
                        set_ids.append(s['set'])
                        targets.append(s['target'])
                magnitude = level['magnitude']
                name = (transformation if magnitude is None
                        else f'{transformation} {magnitude:g}')
                measurements.append(Measurement(name, np.array(picked), set_ids, targets,
                                                transformation, magnitude,
                                                entry.get('unit', '')))
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
