"""fastssl/config_loader.py as a researcher meets it: ``--help`` after a recipe shows the
recipe's values, a typo'd key, section or recipe gets a suggestion, a YAML syntax error its
line, and ``~`` / ``$VAR`` in a path are expanded (taken literally they made folders named
``~`` and ``$SCRATCH``), also in the saved ``config.yaml`` that reproduces the run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fastssl.config import load_settings
from fastssl.config_loader import read_settings
from fastssl.eval_config import declare_knn
from fastssl_common.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def help_lines(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        load_settings([*argv, '--help'])
    assert stop.value.code == 0
    return {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}


def test_help_after_a_recipe_shows_the_recipes_values_and_the_defaults_they_change(capsys):
    lines = help_lines(capsys, '--config-file', 'fti_rt', '--data.batch_size=8')
    assert "['fti_rt', default 'mocov2']" in lines['--train.variant']
    assert "['data/pairs_rt.beton']" in lines['--data.path']    # required: no default
    assert '[8, default 256]' in lines['--data.batch_size']     # the command line wins
    assert '[0.999]' in lines['--moco.momentum']               # the recipe leaves it
    assert 'values as set by fti_rt then the command line' in lines['values']


def test_a_yaml_syntax_error_names_its_line(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('train:\n  epochs: 3\n seed: 1\n')
    with pytest.raises(UserError, match=r'c.yaml is not valid YAML \(line 3: expected'):
        load_settings(['--config-file', str(path)])


@pytest.mark.parametrize('content, message', [
    ('train:\n  epoch: 3\n', r"'train.epoch' in .*c.yaml \(did you mean train.epochs\?\)$"),
    ('trian:\n  epochs: 3\n', r"'trian.epochs' in .*c.yaml \(did you mean train.epochs\?\)$"),
    ('train:\n  lr: 0.1\n', r"'train.lr' in .*c.yaml \(did you mean optim.lr\?\)$"),
    # a mapping where a number goes is that key's wrong value, not an unknown key seed.a
    ('train:\n  seed: {a: 1}\n', r"'train.seed' in .*c.yaml must be an int .*, got a mapping"),
])
def test_a_typo_in_a_config_file_is_named_with_a_suggestion(tmp_path, content, message):
    path = tmp_path / 'c.yaml'
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_settings(['--config-file', str(path)])


def test_a_typo_on_the_command_line_gets_a_suggestion():
    with pytest.raises(UserError, match=r"'trian.epochs' on the command line \(did you mean "
                                        r"train.epochs\?\)"):
        load_settings(['--data.path=x.beton', '--trian.epochs=3'])


@pytest.mark.parametrize('name, suggestion', [
    ('fti_rtt', 'fti_rt'), ('mocov2-r18.yaml', 'mocov2_r18'),
    (str(REPO / 'configs' / 'fti_rt'), str(REPO / 'configs' / 'fti_rt.yaml')),
    (str(REPO / 'configs' / 'fti-rt.yml'), str(REPO / 'configs' / 'fti_rt.yaml'))])
def test_a_misspelled_recipe_or_config_path_gets_a_suggestion(name, suggestion):
    with pytest.raises(UserError, match=rf'config file not found: .*: did you mean '
                                        rf'{suggestion}\?$'):
        load_settings(['--config-file', name])


def test_on_and_off_mean_on_the_command_line_what_they_mean_in_yaml(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('data:\n  os_cache: off\n  verify: on\n')
    from_file = load_settings(['--config-file', str(path), '--data.path=x.beton'])
    typed = load_settings(['--data.os_cache=off', '--data.verify=on', '--data.path=x.beton'])
    assert (from_file.data.os_cache, from_file.data.verify) == (False, True)
    assert (typed.data.os_cache, typed.data.verify) == (False, True)


def test_paths_expand_home_and_variables_and_an_unset_variable_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('SCRATCH', '/scratch/me')
    monkeypatch.delenv('NOPE', raising=False)
    path = tmp_path / 'c.yaml'
    path.write_text('data:\n  path: ~/data/train.beton\ntrain:\n  run_dir: 2024\n')
    settings = load_settings(['--config-file', str(path), '--logging.knn_train_path='
                              '${SCRATCH}/bank.beton'])
    assert settings.data.path == str(tmp_path / 'home' / 'data' / 'train.beton')
    assert settings.logging.knn_train_path == '/scratch/me/bank.beton'
    assert settings.train.run_dir == '2024'          # a YAML integer names a folder too
    knn = read_settings(['--eval.checkpoint=$SCRATCH/r/checkpoint_last.pt',
                         '--eval.train_path=~/t.beton'], declare_knn)
    assert knn.eval.checkpoint == '/scratch/me/r/checkpoint_last.pt'
    assert knn.eval.train_path == str(tmp_path / 'home' / 't.beton')
    with pytest.raises(UserError, match=r"'train.run_dir' names \$NOPE, an environment "
                                        r"variable that is not set: \$NOPE/run$"):
        load_settings(['--data.path=x.beton', '--train.run_dir=$NOPE/run'])
    # set to '': the run went to /run; a shell default was taken for a variable's name
    monkeypatch.setenv('EMPTY', '')
    with pytest.raises(UserError, match=r"'train.run_dir' names \$EMPTY, an environment "
                                        r"variable that is empty: \$EMPTY/run$"):
        load_settings(['--data.path=x.beton', '--train.run_dir=$EMPTY/run'])
    with pytest.raises(UserError, match=r"'train.run_dir' uses \$\{NOPE:-/tmp\}: only \$VAR "
                                        r"and \$\{VAR\} are expanded"):
        load_settings(['--data.path=x.beton', '--train.run_dir=${NOPE:-/tmp}/run'])


def test_the_config_file_is_found_through_variables_and_read_from_a_pipe(monkeypatch,
                                                                           tmp_path):
    """Both said 'config file not found'."""
    (tmp_path / 'c.yaml').write_text('data:\n  batch_size: 8\n')
    monkeypatch.setenv('CONFIGS', str(tmp_path))
    monkeypatch.delenv('NOPE', raising=False)
    settings = load_settings(['--config-file=$CONFIGS/c.yaml', '--data.path=x.beton'])
    assert settings.data.batch_size == 8
    with pytest.raises(UserError, match=r'^--config-file names \$NOPE, an environment variable '
                                        r'that is not set: \$NOPE/c.yaml$'):
        load_settings(['--config-file=$NOPE/c.yaml', '--data.path=x.beton'])
    read, write = os.pipe()              # what the shell's --config-file <(...) gives
    os.write(write, b'data:\n  batch_size: 4\n')
    os.close(write)
    try:
        assert load_settings([f'--config-file=/dev/fd/{read}',
                              '--data.path=x.beton']).data.batch_size == 4
    finally:
        os.close(read)


def test_yaml_merge_keys_extend_a_section(tmp_path):
    """`<<` was refused as a tag without a constructor; the mapping's own keys win."""
    path = tmp_path / 'c.yaml'
    path.write_text('data:\n  <<: {batch_size: 8, resolution: 48}\n  batch_size: 4\n')
    settings = load_settings(['--config-file', str(path), '--data.path=x.beton'])
    assert (settings.data.batch_size, settings.data.resolution) == (4, 48)


def test_a_bad_value_names_the_file_that_gave_it(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('data:\n  batch_size: sixteen\n  resolution: -3\n')
    with pytest.raises(UserError, match=rf"^config key 'data.batch_size' in {path} must be an "
                                        rf"int"):
        load_settings(['--config-file', str(path), '--data.path=x.beton'])
    with pytest.raises(UserError, match=rf'^data.resolution in {path} must be >= 32, got -3$'):
        load_settings(['--config-file', str(path), '--data.path=x.beton',
                       '--data.batch_size=8'])
    # the command line's value replaces the file's: no file to name
    with pytest.raises(UserError, match=r"^config key 'data.batch_size' must be an int"):
        load_settings(['--config-file', str(path), '--data.path=x.beton',
                       '--data.batch_size=x'])


@pytest.mark.e2e   # whole train.py runs, 20-45 s: make test-e2e
def test_a_run_with_variables_in_its_paths_writes_there_and_its_config_reproduces_it(
        small_beton, tiny_args, tmp_path):
    """A cluster user's YAML names $SCRATCH: the run goes to $SCRATCH (before, to a folder
    literally named '$SCRATCH' in the working directory, exit 0), and the saved config.yaml,
    given back as --config-file, gives the same settings."""
    scratch, work = tmp_path / 'scratch', tmp_path / 'work'
    work.mkdir()
    recipe = work / 'cluster.yaml'
    recipe.write_text('train:\n  run_dir: $SCRATCH/first\n  seed: 7\n  epochs: 1\n')
    first = [arg for arg in tiny_args(small_beton, 'unused')
             if not arg.startswith('--train.run_dir')]
    result = subprocess.run([sys.executable, str(REPO / 'train.py'), *first, '--config-file',
                             recipe.name, '--optim.lr=0.1'], cwd=work, capture_output=True,
                            text=True, timeout=300, env={**os.environ, 'SCRATCH': str(scratch)})
    assert result.returncode == 0, result.stderr
    assert os.listdir(work) == [recipe.name]        # no '$SCRATCH' folder beside it
    saved = scratch / 'first' / 'config.yaml'
    settings = yaml.safe_load(saved.read_text())
    assert settings['train']['run_dir'] == str(scratch / 'first')
    assert load_settings(['--config-file', str(saved)]).to_dict() == settings


def test_an_empty_path_is_refused_where_empty_is_not_its_default():
    """``--train.run_dir=``: the run folder ''; it failed later as 'cannot create output
    folder : No such file or directory', naming neither the key nor a path. Where '' is the
    default (a kNN set, "off") it stays what it means."""
    with pytest.raises(UserError, match=r"config key 'train.run_dir' was given empty: give a "
                                        r"path, or leave it out for its default 'runs/mocov2'"):
        load_settings(['--data.path=x.beton', '--train.run_dir='])
    settings = load_settings(['--data.path=x.beton', '--logging.knn_train_path='])
    assert settings.logging.knn_train_path == ''
