"""BatchNorm groups large enough to train on: ``moco.bn_splits=auto``, the warning for groups
under 8 samples (split-BN on one device, shuffle-BN under torchrun), and the shipped recipes
and demos that must not trigger it."""
import glob
import os
import re

import pytest

from fastssl.config import load_settings
from fastssl.split_batchnorm import auto_splits, small_groups_warning
from fastssl.trainer import Trainer


@pytest.mark.parametrize('batch, splits', [(4, 1), (8, 1), (15, 1), (16, 2), (24, 3), (32, 4),
                                           (64, 8), (100, 5), (256, 8), (4096, 8)])
def test_auto_takes_the_most_groups_up_to_8_of_at_least_8(batch, splits):
    assert auto_splits(batch) == splits


def test_the_warning_names_the_group_size_and_what_made_it():
    assert small_groups_warning(16, 8) == (
        'BatchNorm groups of 2 samples (data.batch_size=16 / moco.bn_splits=8) are fewer than '
        '8: their statistics are too noisy to train stably; use moco.bn_splits=auto (groups of '
        '8)')
    assert small_groups_warning(4, 'auto').endswith('use data.batch_size >= 8')
    assert small_groups_warning(16, 'auto') is small_groups_warning(256, 8) is None
    # torchrun: shuffle-BN over each process's share, whatever moco.bn_splits says
    assert small_groups_warning(16, 1, processes=8).startswith(
        'BatchNorm groups of 2 samples (shuffle-BN: data.batch_size=16 over 8 processes)')
    assert small_groups_warning(256, 64, processes=2) is None


def test_training_warns_once_it_starts(small_beton, tmp_path, tiny_args, capsys):
    trainer = Trainer(load_settings(tiny_args(small_beton, tmp_path / 'run',
                                              '--data.batch_size=16', '--moco.bn_splits=8',
                                              '--moco.queue_size=16', '--train.epochs=1')))
    assert 'warning: BatchNorm' not in capsys.readouterr().err   # only when it trains
    trainer.fit()
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'BatchNorm' in line]
    assert warnings == ['warning: ' + small_groups_warning(16, 8)]


DEMOS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, 'scripts',
                                      'demo*.sh')))


@pytest.mark.parametrize('script', DEMOS, ids=os.path.basename)
def test_the_demos_train_with_groups_of_at_least_8(script, repo):
    text = open(script).read().replace('\\\n', ' ')
    # the scripts name their recipe once in a shell variable (RECIPE=configs/...)
    for name, value in re.findall(r'^(\w+)=(\S+)', text, re.MULTILINE):
        text = re.sub(rf'"?\$\{{?{name}\}}?"?', value, text)
    runs = re.findall(r'train\.py --config-file (\S+)([^\n]*)', text)
    for config, flags in runs:
        overrides = re.findall(r'--(data\.batch_size|moco\.bn_splits)=(\S+)', flags)
        settings = load_settings(['--config-file', os.path.join(repo, config),
                                  '--data.path=x.beton', *(f'--{k}={v}' for k, v in overrides)])
        assert small_groups_warning(settings.data.batch_size, settings.moco.bn_splits) is None
    assert runs or 'train.py' not in text
