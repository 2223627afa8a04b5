"""fastssl/config_loader.py: ``--config-file`` takes a path or the name of a shipped recipe."""
from pathlib import Path

import pytest
import yaml

from fastssl.config import load_settings
from fastssl.config_loader import config_file_path
from fastssl_common.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


@pytest.mark.parametrize('name', ['fti', 'fti.yaml'])
def test_a_recipe_is_found_by_name(name):
    assert Path(config_file_path(name)).resolve() == CONFIGS / 'fti.yaml'


def test_a_file_wins_over_a_recipe_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'fti.yaml').write_text('train:\n  epochs: 3\n')
    assert config_file_path('fti.yaml') == 'fti.yaml'


@pytest.mark.parametrize('name', ['nope', 'missing/fti.yaml'])
def test_unknown_names_and_missing_paths_are_one_error_listing_the_recipes(name):
    expected = rf'config file not found: {name} \(named recipes: .*fti_rt'
    with pytest.raises(UserError, match=expected):
        config_file_path(name)


def test_a_folder_is_named_as_one_unless_a_recipe_has_its_name(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=f'config file {tmp_path} is a folder: give a YAML file '
                                        f'in it'):
        config_file_path(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'fti').mkdir()
    assert Path(config_file_path('fti')).resolve() == CONFIGS / 'fti.yaml'


def test_training_settings_load_from_a_recipe_name():
    recipe = yaml.safe_load((CONFIGS / 'fti_rt.yaml').read_text())
    settings = load_settings(['--config-file', 'fti_rt', '--data.path=elsewhere.beton'])
    assert settings.train.variant == recipe['train']['variant'] == 'fti_rt'
    assert settings.model.arch == recipe['model']['arch']
    assert settings.data.path == 'elsewhere.beton'


@pytest.mark.parametrize('content, message', [
    (b'\x80\x02\x8a\nlj\xfc\x9cF\xf9 j\xa8P\x19.', r'is not a YAML text file \(a checkpoint or'),
    # text in another encoding is not called a checkpoint
    (b'data:\n  batch_size: 8  # \xe9t\xe9\n', r'c.yaml is not UTF-8 text \(line 2: byte 0xe9\): '
                                                r'save it as UTF-8$'),
    (b'1: 2\n', r'unknown config key 1 in .*\(keys are names\)'),
    (b'data:\n  7: 2\n', r'unknown config key 7 in .*\(keys are names\)'),
    (b'[]\n', r'c.yaml must hold a mapping of sections'),
    (b'false\n', r'c.yaml must hold a mapping of sections'),
    # an empty value would otherwise silently mean the default
    (b'data:\n  batch_size:\n', r"config key 'data.batch_size' in .*c.yaml has no value"),
    (b'data:\n', r"config section 'data' in .*c.yaml holds no keys"),
    # PyYAML keeps the last of two equal keys: the first section's keys were dropped silently
    (b'train:\n  checkpoint_every: 3\ntrain:\n  seed: 5\n',
     r"c.yaml is not valid YAML \('train' is given twice \(line 3\)\)"),
    (b'train:\n  seed: 3\n  seed: 5\n', r"'seed' is given twice \(line 3\)"),
])
def test_a_config_file_that_is_not_text_or_has_odd_keys_is_one_error(tmp_path, content,
                                                                     message):
    path = tmp_path / 'c.yaml'
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_settings(['--config-file', str(path)])


def test_a_config_file_that_cannot_be_read_names_the_reason():
    # /proc/self/mem is a file whose reading fails (EIO): a real unreadable file, even for root
    with pytest.raises(UserError, match='cannot read config file /proc/self/mem: Input/output'):
        load_settings(['--config-file', '/proc/self/mem'])
