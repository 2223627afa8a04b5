"""fastssl/invariance_data/aloi.py on ALOI png2 trees of the three collections, and wrong
trees or layouts as one clear error."""
import os

import pytest

from fastssl.invariance_data import read_dataset
from fastssl_common.errors import UserError


def names(paths):
    return [os.path.basename(p) for p in paths]


@pytest.mark.parametrize('layout,kind,name', [('view', 'aloi_view', 'viewpoint'),
                                              ('col', 'aloi_col', 'illumination colour'),
                                              ('ill', 'aloi_ill', 'illumination direction')])
def test_aloi_png2_trees(tmp_path, layout, kind, name, invariance_trees):
    root = invariance_trees.aloi_tree(tmp_path, layout)
    data = read_dataset(kind, str(root))
    (m,) = data.measurements
    assert m.name == name and data.images.size == 128 and data.images.boxes is None
    per_object = len(invariance_trees.ALOI_NAMES[layout])
    assert m.set_ids.tolist() == m.targets.tolist() == \
        [obj for obj in (1, 2, 3, 12) for _ in range(per_object)]
    assert sorted(names(data.images.paths[:per_object])) == \
        sorted(f'1_{s}.png' for s in invariance_trees.ALOI_NAMES[layout])
    data.check()


def test_aloi_wrong_tree_and_layout(tmp_path, invariance_trees):
    root = invariance_trees.aloi_tree(tmp_path, 'view')
    with pytest.raises(UserError, match=r'1_r0.png is not named like 1_i110.png .*aloi_red2_col'):
        read_dataset('aloi_col', str(root / 'png2'))
    with pytest.raises(UserError, match='expected one folder per object'):
        read_dataset('aloi_view', str(root / 'png2' / '1'))
