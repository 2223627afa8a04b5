"""``inspect_pairs.py`` and ``render_invariance_sets.py`` as a user runs them on real files:
an ``--out`` on another file system or under a folder they may not write, the sidecar of
another pairs file beside the one inspected, a render stopped part way into folders it had
to create, and a misspelt transformation."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
from fastssl_common.errors import UserError
from tests.conftest import REPO
from writers.inspect_pairs import inspect_pairs
from writers.render_invariance_sets import render_sets
from writers.write_video_pairs import write_video_pairs


@pytest.fixture(scope='module')
def betons(module_tmp):
    """Two small pairs .betons of one clip (3 pairs each): ``tracked`` with 8 rows of tracked
    proposals, ``reserved`` with 32 empty rows."""
    root = module_tmp.mktemp('inspect_audit')
    frames, _ = moving_patch_sequence(20, velocity=(3.0, 1.5))
    write_sequence(root / 'src' / 'clip', frames, boxes=False)
    paths = {'tracked': str(root / 'tracked.beton'), 'reserved': str(root / 'reserved.beton')}
    write_video_pairs(str(root / 'src'), paths['tracked'], gap=6, proposals=4, max_proposals=8,
                      max_resolution=160, track_resolution=320, workers=1, progress=False)
    write_video_pairs(str(root / 'src'), paths['reserved'], gap=6, max_resolution=160,
                      workers=1, progress=False)
    return paths


def test_out_linked_to_another_file_system_gets_its_sheets(betons, tmp_path):
    """``--out sheets`` linked to a scratch file system: the sheets were staged beside the
    link and renamed into the folder it leads to, which a rename cannot do across file
    systems ('cannot write sheets: Invalid cross-device link')."""
    if not os.path.isdir('/dev/shm') or os.stat('/dev/shm').st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('needs /dev/shm on another file system than the test folder')
    target = tmp_path.name + '-sheets'
    scratch = os.path.join('/dev/shm', target)
    os.mkdir(scratch)
    try:
        (tmp_path / 'sheets').symlink_to(scratch)
        summary = inspect_pairs(betons['tracked'], tmp_path / 'sheets')
        assert sorted(os.listdir(scratch)) == ['sheet_00.png', 'summary.json']
        assert summary['sheets'] == ['sheet_00.png']
        assert sorted(os.listdir(tmp_path)) == ['sheets']    # no staging left beside it
    finally:
        shutil.rmtree(scratch)


@pytest.fixture
def locked_parent(tmp_path):
    """``tmp_path/parent`` that this process may not write into (chmod for a user, the
    immutable attribute for root), holding ``mine``, a folder it may write into."""
    parent = tmp_path / 'parent'
    (parent / 'mine').mkdir(parents=True)
    if os.geteuid() != 0:
        parent.chmod(0o555)
    elif subprocess.run(['chattr', '+i', str(parent)], capture_output=True).returncode != 0:
        pytest.skip('root needs chattr +i to lock a folder, not available here')
    try:
        yield parent
    finally:
        if os.geteuid() == 0:
            subprocess.run(['chattr', '-i', str(parent)], check=True)
        parent.chmod(0o755)


def test_a_writable_out_in_a_locked_folder_gets_its_sheets(betons, locked_parent):
    """``--out ~/sheets``-like: the folder is the user's, its parent is not. Staged beside
    ``--out``, this was 'cannot write PARENT/mine: Permission denied' for a folder the user may
    write."""
    out = locked_parent / 'mine'
    summary = inspect_pairs(betons['tracked'], out, pairs=2, per_sheet=1)
    assert sorted(os.listdir(out)) == ['sheet_00.png', 'sheet_01.png', 'summary.json']
    assert len(summary['shown']) == 2


def test_the_sidecar_of_another_pairs_file_is_refused(betons, tmp_path, run_script,
                                                      assert_one_line_error):
    """The tracked file's sidecar beside a file with no tracks (same size, same sample count)
    reported 'kept tracks on moving foreground: 100.0% of 4 judged' for a file whose summary
    says 0 tracks."""
    path = tmp_path / 'reserved.beton'
    shutil.copy(betons['reserved'], path)
    shutil.copy(betons['tracked'] + '.json', f'{path}.json')
    result = run_script('writers/inspect_pairs.py', path, '--out', tmp_path / 'sheets')
    assert_one_line_error(result, f'sidecar {path}.json records another file than {path}',
                          "its 'proposals.max_proposals' is 8, the file's 32")
    assert not (tmp_path / 'sheets').exists()


def test_a_file_with_its_own_sidecar_reports_its_foreground(betons, tmp_path):
    summary = inspect_pairs(betons['tracked'], tmp_path / 'sheets')
    assert summary['proposal_ranking'] == 'motion'
    assert summary['foreground']['tracks_judged'] > 0


def test_a_stopped_render_removes_the_folders_it_made(tmp_path):
    """SIGTERM part way through a render into ``new/deep/out``: the temporary went, but the
    folders ``new`` and ``new/deep``, made for it, stayed behind (empty)."""
    out = tmp_path / 'new' / 'deep' / 'out'
    child = subprocess.Popen([sys.executable, 'writers/render_invariance_sets.py', str(out),
                              '--size', '256'], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.parent.is_dir() and os.listdir(out.parent)):   # rendering has begun
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 143 and stderr == 'stopped by SIGTERM\n', stderr
    assert os.listdir(tmp_path) == []


def test_an_unknown_transformation_names_the_option(tmp_path):
    """'unknown transformation 'rotation' (viewpoint, …)' named neither the option nor that
    the list is what to choose from."""
    with pytest.raises(UserError, match=r"^--transformations: unknown transformation "
                                        r"'rotation' \(choose from viewpoint, "):
        render_sets(tmp_path / 'sets', transformations=['viewpoint', 'rotation'])
    assert os.listdir(tmp_path) == []


def test_a_transformation_given_twice_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"^--transformations: 'viewpoint' is given twice$"):
        render_sets(tmp_path / 'sets', transformations=['viewpoint', 'occlusion', 'viewpoint'])
    assert not (tmp_path / 'sets').exists()


def test_transformations_given_as_a_generator_are_all_rendered(tmp_path):
    """Read once to check the names, a generator then rendered nothing."""
    manifest = render_sets(tmp_path / 'sets', objects=21, per_set=3, size=32,
                           transformations=(t for t in ['viewpoint']))
    assert list(manifest['transformations']) == ['viewpoint']
