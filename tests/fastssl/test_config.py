"""The settings of train.py and every eval.py command, loaded the way the scripts load them:
defaults, declared ranges (one ``error:`` line naming the key and the value), ordered
``X_min``/``X_max`` pairs, and the one backbone group every command shares."""
from types import SimpleNamespace

import pytest
from fastargs.config import Config

from eval import main as eval_main
from fastssl.config import (
    ARCHITECTURES,
    KNN_K,
    KNN_TEMPERATURE,
    PRECISIONS,
    RESOLUTION,
    backbone_params,
    declare_sections,
    load_settings,
)
from fastssl.config_loader import Float, Int, Number, OneOf, read_settings
from fastssl.eval_config import COMMANDS
from fastssl_common.errors import UserError, run_cli
from train import main as train_main

DECLARE = {'train': declare_sections,
           **{name: command.declare for name, command in COMMANDS.items()}}
GROUP = ('checkpoint', 'arch', 'device', 'precision')


def entries(command):
    cfg = Config()
    DECLARE[command](cfg)
    return {'.'.join(path): param for path, param in cfg.entries.items()}


def required_args(command):
    """A value for each required key, so that loading gets past them."""
    return [f"--{key}={param.checker.choices[0] if isinstance(param.checker, OneOf) else 'x'}"
            for key, param in entries(command).items() if param.required]


def run(command, *args):
    """The script's own entry point: train.py's main, or eval.py's with the command."""
    if command == 'train':
        return train_main([*required_args(command), *args])
    return eval_main([command, *required_args(command), *args])


def out_of_range(checker):
    """Values just outside each declared bound of a numeric checker."""
    step = 1 if isinstance(checker, Int) else 0.5
    values = []
    if checker.low is not None:
        values.append(checker.low if checker.low_open else checker.low - step)
    if checker.high is not None:
        values.append(checker.high if checker.high_open else checker.high + step)
    return [checker.convert(v) for v in values]


RANGES = [(command, key, value) for command in DECLARE
          for key, param in entries(command).items() if isinstance(param.checker, Number)
          for value in out_of_range(param.checker)]


def test_defaults_load_for_every_command():
    for command, declare in DECLARE.items():
        settings = read_settings(required_args(command), declare).to_dict()
        for key, param in entries(command).items():
            section, name = key.split('.')
            if not param.required:
                assert settings[section][name] == param.default, key
    settings = load_settings(['--data.path=x.beton'])
    assert (settings.logging.knn_k, settings.logging.knn_temperature) == (KNN_K, KNN_TEMPERATURE)
    assert (settings.data.resolution, settings.model.arch) == (RESOLUTION, 'resnet50')
    knn = read_settings(required_args('knn'), DECLARE['knn'])
    assert (knn.knn.k, knn.knn.temperature, knn.eval.resolution) == \
        (KNN_K, KNN_TEMPERATURE, RESOLUTION)


def test_every_numeric_parameter_declares_its_range():
    for command in DECLARE:
        for key, param in entries(command).items():
            if isinstance(param.checker, Number):
                assert param.checker.bounds(), f'{command}: {key} has no range'
                assert param.checker.bounds() in param.checker.help()


@pytest.mark.parametrize('command, key, value', RANGES, ids=lambda x: str(x))
def test_each_range_refuses_a_value_outside_it(command, key, value, capsys,
                                               assert_one_line_error):
    with pytest.raises(SystemExit) as exited:
        # argv given: run_cli's in-process use (None is the program's own run, which leaves
        # Ctrl-C its default action once main has returned)
        run_cli(lambda argv: run(command, *argv), [f'--{key}={value}'])
    error = capsys.readouterr().err
    assert_one_line_error(SimpleNamespace(returncode=exited.value.code, stderr=error), key,
                          value)
    assert f'{key} must be ' in error and error.rstrip().endswith(f'got {value}')


@pytest.mark.parametrize('command, args, message', [
    ('linear', ['--linear.epochs=0'], 'linear.epochs must be > 0, got 0'),
    ('train', ['--augment.flip_prob=1.5'], 'augment.flip_prob must be in [0, 1], got 1.5'),
    ('train', ['--augment.region_scale_min=0'],
     'augment.region_scale_min must be in (0, 1], got 0.0'),
    ('train', ['--moco.frame_weight=inf'], 'moco.frame_weight must be in [0, 1e+38), got inf'),
    ('train', ['--moco.region_weight=nan'], 'moco.region_weight must be in [0, 1e+38), got nan'),
    ('invariance', ['--invariance.num_workers=-1'],
     'invariance.num_workers must be >= 0, got -1'),
    ('train', ['--train.epochs=2.5'], "config key 'train.epochs' must be an int > 0, got '2.5'"),
    ('train', ['--augment.sigma_min=2', '--augment.sigma_max=1'],
     'augment.sigma_min must be <= augment.sigma_max, got 2.0 > 1.0'),
    # the cases of issue 12: each ended in a traceback or trained on a wrong value
    ('train', ['--optim.lr=-0.03', '--optim.warmup_epochs=1'],
     'optim.lr must be in (0, 1e+38), got -0.03'),
    ('train', ['--optim.lr=0'], 'optim.lr must be in (0, 1e+38), got 0.0'),
    ('train', ['--data.batch_size=0'], 'data.batch_size must be > 0, got 0'),
    ('train', ['--data.batch_size=-8'], 'data.batch_size must be > 0, got -8'),
    ('train', ['--data.resolution=-5'], 'data.resolution must be >= 32, got -5'),
    ('train', ['--data.resolution=16'], 'data.resolution must be >= 32, got 16'),
    ('train', ['--moco.momentum=1'], 'moco.momentum must be in [0, 1), got 1.0'),
    ('train', ['--optim.momentum=1'], 'optim.momentum must be in [0, 1), got 1.0'),
    ('train', ['--moco.bn_splits=0'], 'moco.bn_splits must be > 0 or auto, got 0'),
    ('train', ['--train.seed=4294967296'], 'train.seed must be in [0, 4294967295], got 4294967296'),
    ('knn', ['--eval.resolution=8'], 'eval.resolution must be >= 32, got 8'),
    ('invariance', ['--invariance.resolution=5'],
     'invariance.resolution must be >= 32 or 0, got 5'),
    ('linear', ['--linear.seed=-1'], 'linear.seed must be in [0, 4294967295], got -1'),
    # values each in range that do not fit together
    ('train', ['--data.batch_size=8', '--moco.queue_size=4'],
     'moco.queue_size must be >= 8 (the keys of one step: data.batch_size=8), got 4'),
    ('train', ['--train.variant=fti_rt', '--data.batch_size=8', '--moco.queue_size=8'],
     'moco.queue_size must be >= 16 (the keys of one step: data.batch_size=8 x 2 terms sharing '
     'the queue), got 8'),
    ('train', ['--train.epochs=2', '--optim.warmup_epochs=3'],
     'optim.warmup_epochs must be <= train.epochs=2, got 3.0'),
    # settings that train nothing, or are ignored: they ran to exit 0 with loss 0.000 or no
    # monitor at all
    ('train', ['--moco.frame_weight=0'],
     'train.variant=mocov2 weighs its loss by moco.frame_weight, all 0: it would train nothing'),
    ('train', ['--train.variant=rt', '--moco.region_weight=0'],
     'train.variant=rt weighs its loss by moco.region_weight, all 0: it would train nothing'),
    ('train', ['--train.variant=fti_rt', '--moco.frame_weight=0', '--moco.region_weight=0'],
     'train.variant=fti_rt weighs its loss by moco.frame_weight and moco.region_weight, all 0: '
     'it would train nothing'),
    ('train', ['--train.variant=fti', '--moco.region_weight=2'],
     'moco.region_weight=2.0 changes nothing: train.variant=fti does not read it'),
    ('train', ['--train.variant=rt', '--moco.frame_weight=0.5'],
     'moco.frame_weight=0.5 changes nothing: train.variant=rt does not read it'),
    ('train', ['--moco.separate_queues=true'],
     'moco.separate_queues=true changes nothing: train.variant=mocov2 does not read it'),
    ('train', ['--train.variant=mocov2_frames', '--augment.region_scale_min=0.3'],
     'augment.region_scale_min=0.3 changes nothing: train.variant=mocov2_frames does not read '
     'it'),
    ('train', ['--logging.knn_val_path=val.beton'],
     'logging.knn_val_path needs logging.knn_train_path, the kNN bank: without it the kNN '
     'monitor is off'),
    ('train', ['--logging.invariance_sets=sets'],
     'logging.invariance_sets is set but logging.invariance_every=0 turns the invariance '
     'monitor off: set logging.invariance_every'),
    ('train', ['--logging.invariance_kind=got10k'],
     'logging.invariance_kind is set but logging.invariance_every=0 turns the invariance '
     'monitor off: set logging.invariance_every'),
])
def test_messages(command, args, message):
    with pytest.raises(UserError) as err:
        run(command, *args)
    assert str(err.value) == message


def test_special_values_and_the_edges_of_ranges_load():
    settings = load_settings(['--data.path=x.beton', '--moco.bn_splits=auto', '--optim.lr=1e-9',
                              '--data.resolution=32', '--moco.momentum=0.9999'])
    assert (settings.moco.bn_splits, settings.data.resolution) == ('auto', 32)
    assert load_settings(['--data.path=x.beton', '--moco.bn_splits=4']).moco.bn_splits == 4
    assert load_settings(['--data.path=x.beton', '--train.variant=fti_rt',
                          '--moco.separate_queues=true', '--data.batch_size=8',
                          '--moco.queue_size=8']).moco.queue_size == 8
    invariance = read_settings([*required_args('invariance'), '--invariance.resolution=0'],
                               DECLARE['invariance'])
    assert invariance.invariance.resolution == 0


def test_ranges_hold_for_config_files_too(tmp_path):
    recipe = tmp_path / 'r.yaml'
    recipe.write_text('data:\n  path: x.beton\noptim:\n  momentum: 1.2\n')
    with pytest.raises(UserError, match=rf'^optim\.momentum in {recipe} must be in \[0, 1\), '
                                        rf'got 1\.2$'):
        load_settings(['--config-file', str(recipe)])


def test_every_min_max_pair_must_be_ordered():
    train = entries('train')
    pairs = [key[:-len('_min')] for key in train if key.endswith('_min')]
    assert len(pairs) == 5 and all(f'{pair}_max' in train for pair in pairs)
    for pair in pairs:
        low, high = train[f'{pair}_min'].default, train[f'{pair}_max'].default
        with pytest.raises(UserError, match=rf'^{pair}_min must be <= {pair}_max, got '):
            run('train', f'--{pair}_min={high}', f'--{pair}_max={low}')


def definition(param):
    checker = param.checker
    return type(checker), checker.help(), param.required, param.desc


def test_backbone_group_is_one_definition():
    """checkpoint/arch/device/precision mean the same in every section that has them: all
    come from ``backbone_params`` (invariance's precision only defaults to fp32, and says
    why)."""
    shared = {key: definition(param) for key, param in backbone_params(*GROUP).items()}
    found = {}
    for command in DECLARE:
        for key, param in entries(command).items():
            section, name = key.split('.')
            if name not in GROUP or (section, name) == ('model', 'arch'):
                continue
            found[key] = param
            kind, help_text, required, desc = definition(param)
            assert (kind, help_text, required) == shared[name][:3], key
            assert desc.startswith(shared[name][3]), key
            assert param.default == ('fp32' if key == 'invariance.precision'
                                     else backbone_params(name)[name].default), key
    assert set(found) == {'eval.checkpoint', 'eval.arch', 'eval.device', 'eval.precision',
                          'export.checkpoint', 'export.arch', 'invariance.arch',
                          'invariance.device', 'invariance.precision', 'train.device',
                          'train.precision'}
    assert found['eval.arch'].checker.choices == ('auto', *ARCHITECTURES)
    assert found['train.precision'].checker.choices == PRECISIONS
    assert entries('train')['model.arch'].checker.choices == tuple(ARCHITECTURES)
    # knn and linear share the one ``eval`` section
    knn, linear = entries('knn'), entries('linear')
    evaluated = [key for key in knn if key.startswith('eval.')]
    assert evaluated == [key for key in linear if key.startswith('eval.')]
    assert all(definition(knn[key]) == definition(linear[key]) and
               knn[key].default == linear[key].default for key in evaluated)


def test_float_and_int_checkers():
    assert (Float(gt=0, le=1).bounds(), Float(le=1).bounds()) == ('in (0, 1]', '<= 1')
    assert Int(ge=0).help() == 'an int >= 0' and Float().help() == 'a float'
    for checker, value in ((Int(), True), (Int(), 3.7), (Float(), False), (Int(), 'x')):
        with pytest.raises((TypeError, ValueError)):
            checker.check(value)
    assert Int(gt=0).check('3') == 3 and Float(ge=0).check('0') == 0.0
