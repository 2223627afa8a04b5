"""fastssl/invariance_data/got10k.py on a GOT-10k train split in its on-disk format: the
authors' occlusion protocol, and bad layouts as one clear error."""
import os

import numpy as np
import pytest

from fastssl.invariance_data import read_dataset
from fastssl_common.errors import UserError


def test_got10k_occlusion_protocol(got_root, invariance_trees):
    data = read_dataset('got10k', str(got_root))   # the folder above train/ is accepted too
    (m,) = data.measurements
    assert data.images.size == 128 and m.name == 'occlusion'
    # The authors' draw: np.random.seed(1992), then one choice per cover level (ascending)
    # of every kept sequence, in list.txt order; sequence 2 spans 8-5 = 3 < 4 and is skipped.
    np.random.seed(1992)
    expected_paths, expected_targets = [], []
    for name, cls, cover in invariance_trees.GOT_SEQUENCES:
        cover = np.array(cover)
        if cover.max() - cover.min() < 4:
            continue
        for level in np.unique(cover):
            frame = np.random.choice(np.where(cover == level)[0])
            expected_paths.append(os.path.join(name, f'{frame + 1:08d}.jpg'))
            expected_targets.append(cls.replace(' ', '_'))
    got = [os.path.relpath(p, got_root / 'train') for p in data.images.paths]
    assert got == expected_paths
    assert list(m.targets) == expected_targets
    assert sorted(set(m.set_ids)) == ['GOT-10k_Train_000001', 'GOT-10k_Train_000003',
                                      'GOT-10k_Train_000004']
    frame = int(os.path.basename(data.images.paths[0])[:-4]) - 1
    np.testing.assert_allclose(data.images.boxes[0], [4 + frame, 5.5, 30 + frame, 20.25])
    data.check()


def test_got10k_bad_layout(tmp_path, got_root):
    with pytest.raises(UserError, match='expected the file .*list.txt'):
        read_dataset('got10k', str(tmp_path))
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(got_root / 'train', broken)
    os.remove(broken / 'GOT-10k_Train_000003' / 'cover.label')
    with pytest.raises(UserError, match='expected the file .*000003/cover.label'):
        read_dataset('got10k', str(broken))
    (broken / 'GOT-10k_Train_000003' / 'cover.label').write_text('1\n8\n')
    with pytest.raises(UserError, match='2 levels for 6 boxes'):
        read_dataset('got10k', str(broken))
