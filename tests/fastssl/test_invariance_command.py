"""fastssl/invariance_command.py's option parsing: checkpoints named by run folder or file stem
(made unique, NAME=PATH when asked), top-K lists, and outputs checked before any work.
(The command end to end: tests/test_eval_invariance.py.)"""
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
    assert parse_checkpoints(f'mine={plain},{plain},{plain}') == [
        ('mine', plain), ('resnet50', plain), ('resnet50#2', plain)]


def test_checkpoint_refusals(tmp_path):
    with pytest.raises(UserError, match='checkpoint not found: .*missing.pt'):
        parse_checkpoints(str(tmp_path / 'missing.pt'))
    with pytest.raises(UserError, match='checkpoint not found: nowhere.pt'):
        parse_checkpoints('a=nowhere.pt')
    with pytest.raises(UserError, match='names no checkpoint'):
        parse_checkpoints(' , ')


def test_top_k():
    assert parse_ks('10, 25,,50') == [10, 25, 50]
    for bad in ('', '0,10', 'ten', '10,-1'):
        with pytest.raises(UserError, match=f"invariance.top_k must be .*got '{bad}'"):
            parse_ks(bad)


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
