"""Invariance datasets: each reader turns a dataset root, in its published on-disk layout,
into images (paths, optional crop boxes, output size) and one or more *measurements* (a set id
and a target per image) following the study's protocol (docs/evaluation.md).

``read_dataset(kind, root)`` dispatches on ``kind`` (one of :data:`KINDS`).
"""
from fastssl_common.errors import UserError

from .sets import ImageList, InvarianceData, Measurement

# kind -> (module, reader function name, description for --help)
KINDS = {
    'got10k': ('got10k', 'read_got10k', 'GOT-10k train split: occlusion'),
    'aloi_view': ('aloi', 'read_aloi_view', 'ALOI aloi_red2_view (png2): viewpoint'),
    'aloi_col': ('aloi', 'read_aloi_col', 'ALOI aloi_red2_col (png2): illumination colour'),
    'aloi_ill': ('aloi', 'read_aloi_ill', 'ALOI aloi_red2_ill (png2): illumination direction'),
    'pascal3d': ('pascal3d', 'read_pascal3d',
                 'Pascal3D+ release 1.1: instance, viewpoint+instance'),
    'folders': ('folders', 'read_folders', 'generic ROOT/<target>/<set>/<image>'),
    'rendered': ('rendered', 'read_rendered',
                 'rendered data of writers/render_invariance_sets.py (curves over magnitude)'),
}


def read_dataset(kind, root):
    """-> :class:`InvarianceData` for ``root`` read as ``kind``; UserError for a wrong layout."""
    import importlib
    if kind not in KINDS:
        raise UserError(f"unknown invariance dataset kind '{kind}' ({', '.join(KINDS)})")
    module, function, _ = KINDS[kind]
    reader = getattr(importlib.import_module(f'{__name__}.{module}'), function)
    return reader(root)


__all__ = ['KINDS', 'ImageList', 'InvarianceData', 'Measurement', 'read_dataset']
