"""fastssl/invariance_command.py's option parsing: checkpoints named by run folder or file stem
(made unique, NAME=PATH when asked), top-K lists, and outputs checked before any work.
(The command end to end: tests/test_eval_invariance.py.)"""
import re
from types import SimpleNamespace

import pytest

from fastssl.invariance_command import check_outputs, parse_checkpoints, parse_ks
from fastssl_common.errors import UserError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'')
    return str(path)


def test_checkpoint_names(tmp_path):
    fti = touch(tmp_path / 'runs' / 'fti' / 'checkpoint_last.pt')
    rt = touch(tmp_path / 'runs' / 'rt' / 'checkpoint_e0003.pt')
    plain = touch(tmp_path / 'resnet50.tar.pth')
    odd = touch(tmp_path / 'lr=0.1.pt')                   # an existing file: a path, not NAME=
    assert parse_checkpoints(f'{fti}, {rt},{plain},,{odd}') == [
        ('fti', fti), ('rt', rt), ('resnet50', plain), ('lr=0', odd)]
    assert parse_checkpoints(f'mine = {plain},{plain},{plain}') == [
        ('mine', plain), ('resnet50', plain), ('resnet50#2', plain)]


def test_checkpoint_paths_expand_home_and_variables(tmp_path, monkeypatch):
    """As every other path setting: taken literally, '~/runs/...' was not found."""
    plain = touch(tmp_path / 'runs' / 'fti' / 'checkpoint_last.pt')
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('RUNS', str(tmp_path / 'runs'))
    assert parse_checkpoints('a=~/runs/fti/checkpoint_last.pt,${RUNS}/fti/checkpoint_last.pt') \
        == [('a', plain), ('fti', plain)]
    monkeypatch.delenv('RUNS')
    with pytest.raises(UserError, match=r'names \$RUNS, an environment variable that is not set'):
        parse_checkpoints('$RUNS/fti/checkpoint_last.pt')


def test_checkpoint_refusals(tmp_path):
    with pytest.raises(UserError, match='checkpoint not found: .*missing.pt'):
        parse_checkpoints(str(tmp_path / 'missing.pt'))
    with pytest.raises(UserError, match='checkpoint not found: nowhere.pt'):
        parse_checkpoints('a=nowhere.pt')
    with pytest.raises(UserError, match='names no checkpoint'):
        parse_checkpoints(' , ')
    with pytest.raises(UserError, match=r"^invariance.checkpoints: 'fti=' names no file after "
                                        r"its '='$"):
        parse_checkpoints('fti=')
    # '=' alone read "the name of  must be a plain name, not ''"
    with pytest.raises(UserError, match=r"^invariance.checkpoints: '=' names no file after"):
        parse_checkpoints('=')
    with pytest.raises(UserError, match=r"'=.*a.pt' gives no name before its '=' \(NAME=PATH"):
        parse_checkpoints(f"={touch(tmp_path / 'a.pt')}")
    # it scored the same checkpoint as 'a' and 'a#2'
    with pytest.raises(UserError, match=r"^invariance.checkpoints names 'a' twice: give each "):
        parse_checkpoints(f"a={touch(tmp_path / 'a.pt')},b={tmp_path / 'a.pt'},a=x.pt")
    # a name is a TensorBoard run folder in invariance.run_dir: ../x would write outside it
    plain = touch(tmp_path / 'a.pt')
    for name in ('../../elsewhere', 'a/b', '.', '..'):
        with pytest.raises(UserError, match=f"the name of .*a.pt must be a plain name, not "
                                            f"'{re.escape(name)}'"):
            parse_checkpoints(f'{name}={plain}')


def test_top_k():
    assert parse_ks('10, 25,,50') == [10, 25, 50]
    for bad in ('', '0,10', 'ten', '10,-1'):
        with pytest.raises(UserError, match=f"invariance.top_k must be .*got '{bad}'"):
            parse_ks(bad)
    # the table showed the @10 columns twice, the JSON's scores had one
    with pytest.raises(UserError, match="invariance.top_k lists 10 twice: '25,10,10'"):
        parse_ks('25,10,10')


def test_outputs_are_checked_before_the_work(tmp_path):
    outputs = SimpleNamespace(plot=str(tmp_path / 'plots' / 'curves.png'),
                              output=str(tmp_path / 'json' / 'scores.json'),
                              run_dir=str(tmp_path / 'tb'))
    check_outputs(outputs)
    assert all((tmp_path / name).is_dir() for name in ('plots', 'json', 'tb'))
    with pytest.raises(UserError, match=r'invariance.plot must end in .png: .*curves.pdf'):
        check_outputs(SimpleNamespace(plot=str(tmp_path / 'curves.pdf'), output=None,
                                      run_dir=None))
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(UserError, match='cannot create output folder .*file/sub'):
        check_outputs(SimpleNamespace(plot=None, output=str(blocker / 'sub' / 'a.json'),
                                      run_dir=None))


def test_outputs_that_would_clobber_each_other_or_a_training_run_are_refused(tmp_path):
    same = str(tmp_path / 'same.png')
    with pytest.raises(UserError, match='invariance.output and invariance.plot are both '
                                        '.*same.png: give two files'):
        check_outputs(SimpleNamespace(plot=same, output=same, run_dir=None))
    checkpoint = touch(tmp_path / 'run1' / 'checkpoint_last.pt')
    for run_dir in (tmp_path / 'run1', tmp_path):
        with pytest.raises(UserError, match=f'invariance.run_dir {run_dir} holds '
                                            f'{checkpoint}, an input of this run'):
            check_outputs(SimpleNamespace(plot=None, output=None, run_dir=str(run_dir)),
                          [checkpoint])
    check_outputs(SimpleNamespace(plot=None, output=None, run_dir=str(tmp_path / 'run1' / 'inv')),
                  [checkpoint])
