"""Every named recipe in configs/ loads with the strict config checks."""
import glob
import os

import pytest

from fastssl.config import load_settings
from fastssl.split_batchnorm import resolve_splits, small_groups_warning
from fastssl.variants import VARIANTS

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, 'configs',
                                      '*.yaml')))


def test_the_recipes_are_found():
    names = {os.path.basename(path) for path in CONFIGS}
    assert {'fti.yaml', 'rt.yaml', 'fti_rt.yaml', 'mocov2_r50.yaml'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_recipe_loads(path):
    settings = load_settings(['--config-file', path, '--data.path=any.beton'])
    assert settings.train.variant in VARIANTS
    batch, splits = settings.data.batch_size, settings.moco.bn_splits
    assert batch % resolve_splits(splits, batch) == 0
    # no recipe trains with BatchNorm groups too small to be stable (the demos included)
    assert small_groups_warning(batch, splits) is None
    # 16 was refused on any machine with fewer cores ('data.num_workers=16 exceeds the 2
    # threads FFCV can run on this machine'): 0 takes the cores there are
    assert settings.data.num_workers <= 2
