"""BatchNorm groups large enough to train on: ``moco.bn_splits=auto``, the warning for groups
under 8 samples (split-BN on one device, shuffle-BN under torchrun), and the shipped recipes
and demos that must not trigger it."""
import glob
import os
import re

import pytest

from fastssl.config import load_settings
from fastssl.split_batchnorm import auto_splits, check_bn_groups, small_groups_warning
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError


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


def test_the_terms_of_a_step_share_its_groups():
    """fti_rt's two terms go through the query encoder as one batch of 2 x data.batch_size."""
    assert small_groups_warning(8, 4, terms=2) == (
        'BatchNorm groups of 4 samples (data.batch_size=8 x 2 terms / moco.bn_splits=4) are '
        'fewer than 8: their statistics are too noisy to train stably; use moco.bn_splits=auto '
        '(groups of 16)')
    assert small_groups_warning(8, 2, terms=2) is None
    assert small_groups_warning(2, 1, terms=2).endswith('use data.batch_size >= 4')
    assert small_groups_warning(8, 1, processes=4, terms=2).startswith(
        'BatchNorm groups of 4 samples (shuffle-BN: data.batch_size=8 x 2 terms over 4 '
        'processes)')


def test_groups_of_one_sample_are_refused_before_any_folder(small_beton, tmp_path, tiny_args):
    """They trained into a traceback ('Expected more than 1 value per channel when training')
    after writing config.yaml and an events file."""
    with pytest.raises(UserError, match=re.escape(
            'BatchNorm groups of 1 sample (data.batch_size=8 / moco.bn_splits=8): BatchNorm '
            'needs at least 2 to train; use moco.bn_splits=auto (groups of 8)')):
        check_bn_groups(8, 8)
    with pytest.raises(UserError, match=re.escape(
            'groups of 1 sample (shuffle-BN: data.batch_size=2 over 2 processes)')):
        check_bn_groups(2, 'auto', processes=2)
    check_bn_groups(8, 8, terms=2)      # groups of 2: a warning, not a refusal
    run = tmp_path / 'run'
    with pytest.raises(UserError, match='BatchNorm groups of 1 sample'):
        Trainer(load_settings(tiny_args(small_beton, run, '--moco.bn_splits=8')))
    with pytest.raises(UserError, match='BatchNorm groups of 1 sample'):
        Trainer(load_settings(tiny_args(small_beton, run, '--data.batch_size=1',
                                        '--moco.bn_splits=auto', '--moco.queue_size=1')))
    assert not run.exists()


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
