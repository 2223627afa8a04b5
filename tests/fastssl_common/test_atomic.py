"""Write-then-rename leaves either the complete file or nothing; temporaries are named after
their owner, and those of processes that are gone are removed by the next write."""
import json
import os
import subprocess
import sys

import pytest

from fastssl_common.atomic import (
    HOST,
    atomic_path,
    ensure_writable_dir,
    owned_name,
    temporary_name,
    write_json,
)
from fastssl_common.errors import UserError


def test_file_appears_only_on_success(tmp_path):
    target = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, 'wb') as handle:
                handle.write(b'half')
            raise RuntimeError('crash while writing')
    assert os.listdir(tmp_path) == []
    with atomic_path(str(target)) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(b'whole')
    assert target.read_bytes() == b'whole' and os.listdir(tmp_path) == ['out.bin']


def test_failed_rewrite_keeps_the_previous_file(tmp_path):
    target = tmp_path / 'r.json'
    write_json(str(target), {'v': 1})
    with pytest.raises(TypeError):
        write_json(str(target), {'v': object()})
    assert target.read_text().strip().startswith('{') and '"v": 1' in target.read_text()
    assert os.listdir(tmp_path) == ['r.json']


def test_a_linked_output_is_written_where_it_leads(tmp_path):
    """``eval.py knn --out results/knn.json`` with the JSON linked to a shared folder replaced
    the link by a file beside it, and the shared copy went stale."""
    (tmp_path / 'shared').mkdir()
    (tmp_path / 'run').mkdir()
    target, link = tmp_path / 'shared' / 'knn.json', tmp_path / 'run' / 'knn.json'
    target.write_text('{"v": 0}')
    link.symlink_to(target)
    write_json(str(link), {'v': 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {'v': 1}
    assert sorted(os.listdir(tmp_path / 'shared')) == ['knn.json']
    dangling = tmp_path / 'run' / 'gone.json'
    dangling.symlink_to(tmp_path / 'nowhere' / 'gone.json')
    write_json(str(dangling), {'v': 2})                  # leads nowhere: replaced, as before
    assert not dangling.is_symlink() and json.loads(dangling.read_text()) == {'v': 2}


def test_unwritable_folder_is_a_user_error_naming_it(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(UserError, match='a_file'):
        ensure_writable_dir(str(blocker / 'sub'))


# ---------------------------------------------------------------------------- stale temporaries

@pytest.fixture
def pids():
    """``(dead, live)``: the PID of a process that has exited and of one still running."""
    ended = subprocess.Popen([sys.executable, '-c', 'pass'])
    ended.wait()
    running = subprocess.Popen(['sleep', '60'])
    yield ended.pid, running.pid
    running.kill()
    running.wait()


def test_temporaries_are_named_after_their_owner(tmp_path):
    assert temporary_name(str(tmp_path / 'a.json')) == \
        str(tmp_path / f'.a.json.tmp-{HOST}-{os.getpid()}')
    assert owned_name(str(tmp_path / 'o.beton'), 'spool') == \
        str(tmp_path / f'.o.beton.spool-{HOST}-{os.getpid()}')


def test_stale_temporaries_of_dead_processes_are_removed_and_said(tmp_path, pids, capsys):
    dead, live = pids
    names = {
        f'.r.json.tmp-{HOST}-{dead}': False,          # same output, owner gone: removed
        f'.checkpoint_last.pt.tmp-{HOST}-{dead}': False,   # same kind, same folder: removed
        f'.r.json.tmp-{HOST}-{live}': True,           # owner still running
        f'.r.json.tmp-elsewhere-{dead}': True,        # another host's: cannot be checked
        f'.o.beton.spool-{HOST}-{dead}': True,        # another kind: its own writer's business
        '.r.json.tmp-123': True,                      # not an owned name
    }
    for name in names:
        (tmp_path / name).write_bytes(b'half')
    (tmp_path / f'.run.tmp-{HOST}-{dead}').mkdir()    # a staging folder of the same kind
    (tmp_path / f'.run.tmp-{HOST}-{dead}' / 'x.png').write_bytes(b'x')
    write_json(str(tmp_path / 'r.json'), {'v': 1})
    kept = sorted(n for n, keep in names.items() if keep) + ['r.json']
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'removed 3 stale temporaries left in {tmp_path}')
    write_json(str(tmp_path / 'r.json'), {'v': 2})   # nothing left to say
    assert capsys.readouterr().err == ''


def test_stale_spool_folders_are_removed_by_the_next_write(tmp_path, pids, capsys):
    from writers.spool import spool_folder

    dead, live = pids
    stale, running = (tmp_path / f'.o.beton.spool-{HOST}-{pid}' for pid in (dead, live))
    for folder in (stale, running):
        folder.mkdir()
        (folder / '0.jpgs').write_bytes(b'frames')
    with spool_folder(str(tmp_path / 'o.beton')) as path:
        assert os.path.basename(path) == f'.o.beton.spool-{HOST}-{os.getpid()}'
    assert sorted(os.listdir(tmp_path)) == [running.name]
    assert 'removed 1 stale temporary' in capsys.readouterr().err
