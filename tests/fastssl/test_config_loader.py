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


def test_training_settings_load_from_a_recipe_name():
    recipe = yaml.safe_load((CONFIGS / 'fti_rt.yaml').read_text())
    settings = load_settings(['--config-file', 'fti_rt', '--data.path=elsewhere.beton'])
    assert settings.train.variant == recipe['train']['variant'] == 'fti_rt'
    assert settings.model.arch == recipe['model']['arch']
    assert settings.data.path == 'elsewhere.beton'
