"""eval.py's command line: ``--help`` lists the commands with a line each, each command's
``--help`` names it, and a file that is not a checkpoint is named as such."""
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from eval import main
from fastssl.eval_config import COMMANDS
from fastssl_common.errors import run_cli


def test_help_lists_every_command_with_what_it_does(capsys):
    assert main(['--help']) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, command in COMMANDS.items():
        assert f'  {name}' in [line[:len(name) + 2] for line in lines]
        assert any(line.split() == [name, *command.about.split()] for line in lines), name


@pytest.mark.parametrize('name', list(COMMANDS))
def test_each_commands_help_names_it(name, capsys):
    with pytest.raises(SystemExit):
        main([name, '--help'])
    usage, about = capsys.readouterr().out.splitlines()[:2]
    assert usage.startswith(f'usage: eval.py {name} ') and about == COMMANDS[name].about


@pytest.mark.parametrize('name', list(COMMANDS))
def test_a_key_of_no_section_is_refused_before_torch_loads(name, repo, tmp_path):
    # every command declared the invariance command's settings, which imported torch (2 s)
    probe = ('import sys\n'
             'from fastssl.eval_command import cli\n'
             'try:\n'
             '    cli()\n'
             'finally:\n'
             '    print("torch" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', probe, name, '--model.checkpoint=x.pt'],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, 'PYTHONPATH': repo})
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown config key 'model.checkpoint' on the "
                                    'command line'), result.stderr
    assert result.stdout == 'False\n'


@pytest.mark.parametrize('content, kind', [
    ('data:\n  path: x.beton\n', 'a text file'),
    ('', 'an empty file'),
    (None, 'binary data that torch.save does not write'),   # a .beton
])
def test_export_of_a_file_that_is_not_a_checkpoint(content, kind, small_beton, tmp_path,
                                                   capsys, assert_one_line_error):
    path = tmp_path / 'recipe.yaml'
    if content is None:
        path = small_beton
    else:
        path.write_text(content)
    out = tmp_path / 'out.pth'
    with pytest.raises(SystemExit) as exited:
        run_cli(main, ['export', f'--export.checkpoint={path}', f'--export.out={out}'])
    assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                          stderr=capsys.readouterr().err),
                          f'{path} is not a PyTorch checkpoint ({kind})')
    assert not out.exists()


@pytest.mark.parametrize('argv, key', [
    (['knn', '--eval.checkpoint=', '--eval.train_path=x.beton'], 'eval.checkpoint'),
    (['knn', '--eval.checkpoint=x.pt', '--eval.train_path='], 'eval.train_path'),
    (['export', '--export.checkpoint=x.pt', '--export.out='], 'export.out'),
])
def test_a_required_key_given_empty_is_named(argv, key):
    # it used to fail later, naming no key: "cannot write : No such file or directory"
    from fastssl_common.errors import UserError

    with pytest.raises(UserError, match=f"config key '{key}' is required and was given empty"):
        main(argv)
