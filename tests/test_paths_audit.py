"""File paths as users on a cluster give them: ``~`` after ``--option=`` (where the shell leaves
it), names near the file system's limit, links to nothing in an output folder's path, and a
``.beton`` linked into place without its sidecar."""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import REPO


def run(script, *args, home=None, cwd=REPO):
    """A script of the repository run as a user runs it, from ``cwd``, with ``home`` as ~."""
    env = dict(os.environ, HOME=str(home)) if home else None
    return subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope='module')
def photos(module_tmp):
    """A folder of two real photos (scikit-image), unlabelled."""
    from skimage import data

    folder = module_tmp.mktemp('photos')
    for name in ('astronaut', 'coffee'):
        Image.fromarray(getattr(data, name)()).resize((64, 48)).save(folder / f'{name}.jpg')
    return folder


@pytest.fixture(scope='module')
def tracked_pairs(module_tmp, planted_cut_clip):
    """A pairs .beton of the planted-cut clip with tracked proposals (its sidecar records how
    they were ranked)."""
    from writers.write_video_pairs import write_video_pairs

    root = module_tmp.mktemp('pairs')
    clip = root / 'clip.mp4'
    planted_cut_clip.write(str(clip))
    out = root / 'pairs.beton'
    write_video_pairs(str(clip), str(out), gap=2, proposals=4, workers=1, progress=False)
    return out


def test_an_out_name_too_long_for_its_temporary_is_one_line(photos, tmp_path,
                                                            assert_one_line_error):
    """A 245-byte name (125 characters) fits, but the writer's temporary
    ``.NAME.tmp-HOST-PID`` beside it does not: the OS's 'File name too long' named OUT."""
    name = 'é' * 119 + 'a.beton'
    assert len(name.encode()) == 245
    result = run('writers/write_images.py', '--workers', 1, photos, tmp_path / name)
    assert_one_line_error(result, name, 'its name is too long for the temporary .NAME.tmp-',
                          'shorten it by ')
    assert os.listdir(tmp_path) == []


def test_an_output_folder_under_a_link_to_nothing_names_the_link(photos, tmp_path,
                                                                 assert_one_line_error):
    """The OS said 'File exists' for a link that ``ls`` shows but that leads nowhere (a
    scratch file system not mounted)."""
    link = tmp_path / 'data'
    link.symlink_to(tmp_path / 'gone')
    result = run('writers/write_images.py', '--workers', 1, photos, link / 'sub' / 'x.beton')
    assert_one_line_error(result, f'{link} is a symbolic link to {tmp_path}/gone, which does '
                                  f'not exist')


def test_a_run_folder_that_is_a_file_says_so(tmp_path):
    """``train.run_dir`` (or an eval output's folder) where a file is: 'File exists'."""
    from fastssl_common.atomic import ensure_writable_dir
    from fastssl_common.errors import UserError

    (tmp_path / 'runs').write_text('x')
    with pytest.raises(UserError, match=f'^cannot create output folder {tmp_path}/runs/a: '
                                        f'{tmp_path}/runs is a file, not a folder$'):
        ensure_writable_dir(str(tmp_path / 'runs' / 'a'))


def test_config_file_after_equals_expands_tilde(tmp_path, assert_one_line_error):
    """``--config-file=~/c.yaml``: the shell leaves ``~`` after ``=``; the keys' paths were
    expanded there, the config file itself was 'not found'."""
    (tmp_path / 'c.yaml').write_text('data:\n  path: ~/x.beton\ntrain:\n  epochs: 0\n')
    result = run('train.py', '--config-file=~/c.yaml', home=tmp_path)
    assert_one_line_error(result, 'train.epochs in ', 'c.yaml must be > 0, got 0')  # read


def test_writer_option_after_equals_expands_tilde(tracked_pairs, tmp_path):
    """``inspect_pairs.py --out=~/sheets`` made a folder named ``~`` in the working folder."""
    home, work = tmp_path / 'home', tmp_path / 'work'
    home.mkdir()
    work.mkdir()
    result = run('writers/inspect_pairs.py', '--out=~/sheets', '--pairs', 2, tracked_pairs,
                 home=home, cwd=work)
    assert result.returncode == 0, result.stderr
    assert (home / 'sheets' / 'summary.json').is_file()
    assert os.listdir(work) == []


def test_a_linked_beton_keeps_the_sidecar_beside_its_file(tracked_pairs, tmp_path):
    """``ln -s /datasets/pairs.beton``: the sidecar stays beside the file the link leads to;
    read as ``LINK.json`` it was missing, and the summary lost the proposals' ranking."""
    link = tmp_path / 'linked.beton'
    link.symlink_to(tracked_pairs)
    result = run('writers/inspect_pairs.py', '--out', tmp_path / 'sheets', '--pairs', 2, link)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / 'sheets' / 'summary.json').read_text())
    sidecar = json.loads((tracked_pairs.parent / 'pairs.beton.json').read_text())
    assert summary['proposal_ranking'] == sidecar['proposals']['ranking'] is not None


def test_a_file_named_like_an_option_says_how_to_give_it(photos, tmp_path,
                                                         assert_one_line_error):
    """``write_images.py SRC -x.beton``: argparse takes the name for an unknown option and
    said only 'the following arguments are required: OUT.beton'."""
    result = run('writers/write_images.py', photos, '-x.beton', cwd=tmp_path)
    assert_one_line_error(result, 'the following arguments are required: OUT.beton',
                          'write ./-x.beton for a file whose name starts with -')
    assert os.listdir(tmp_path) == []
    result = run('writers/write_images.py', '--workers', 1, photos, './-x.beton', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ['-x.beton', '-x.beton.json']


def test_a_value_named_like_an_option_says_how_to_give_it(photos, tmp_path,
                                                         assert_main_one_line_error):
    """``--shard -1/2``: argparse takes the value for an unknown option; the hint was the one
    for a file name (``./-1/2``), which is no way to give an option its value."""
    from writers.write_images import main

    assert_main_one_line_error(main, [photos, tmp_path / 'x.beton', '--shard', '-1/2'],
                               'argument --shard: expected one argument',
                               '(-1/2 was read as an option: write --shard=-1/2)')
    assert os.listdir(tmp_path) == []


def test_a_linked_out_is_written_where_it_leads(photos, tmp_path):
    """``data/x.beton -> /scratch/x.beton``: the writer writes the file the link leads to, with
    its sidecar beside it (as ``cp`` would); it used to replace the link with a new file in
    the link's folder, leaving the linked file stale."""
    scratch, data = tmp_path / 'scratch', tmp_path / 'data'
    scratch.mkdir()
    data.mkdir()
    (scratch / 'x.beton').write_bytes(b'an earlier file')
    (data / 'x.beton').symlink_to(scratch / 'x.beton')
    result = run('writers/write_images.py', '--workers', 1, photos, data / 'x.beton')
    assert result.returncode == 0, result.stderr
    assert f'output: {scratch}/x.beton (metadata: {scratch}/x.beton.json' in result.stdout
    assert os.listdir(data) == ['x.beton'] and (data / 'x.beton').is_symlink()
    assert sorted(os.listdir(scratch)) == ['x.beton', 'x.beton.json']
    assert json.loads((scratch / 'x.beton.json').read_text())['num_samples'] == 2


def test_an_out_name_too_long_for_the_sidecar_is_refused_before_any_work(tmp_path,
                                                                         assert_one_line_error):
    """The sidecar's temporary ``.NAME.json.tmp-HOST-PID`` is the longest name a writer makes:
    an OUT whose own temporary fits but the sidecar's does not failed after the whole write."""
    from fastssl_common.atomic import HOST, PID_DIGITS

    name = 'a' * (255 - len(f'..beton.json.tmp-{HOST}-') - PID_DIGITS + 1) + '.beton'
    result = run('writers/write_video_pairs.py', '--gap', 4, tmp_path / 'no_videos_here',
                 tmp_path / name)
    assert_one_line_error(result, f'cannot write {tmp_path / name}.json: its name is too long',
                          'shorten it by 1 bytes')


def test_a_linked_shard_is_merged_with_the_sidecar_beside_its_file(tracked_pairs, tmp_path):
    """``merge_betons.py`` refused a linked input: 'has no sidecar LINK.json'."""
    link = tmp_path / 'linked.beton'
    link.symlink_to(tracked_pairs)
    result = run('writers/merge_betons.py', tmp_path / 'merged.beton', link)
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / 'merged.beton.json').read_text())
    written = json.loads((tracked_pairs.parent / 'pairs.beton.json').read_text())
    assert merged['num_samples'] == written['num_samples'] > 0


def test_a_linked_betons_sidecar_is_checked_and_read(small_beton, tmp_path):
    """``loaders.verify`` skipped the hashes of a linked file ('no sidecar LINK.json') and
    evaluation found no class names for it."""
    from fastssl.evaluation import class_names

    link = tmp_path / 'linked.beton'
    link.symlink_to(small_beton)
    result = subprocess.run([sys.executable, '-m', 'loaders.verify', str(link)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'page hashes match the sidecar' in result.stdout
    assert class_names(str(link)) == class_names(small_beton)
    assert len(class_names(str(link))[0]) == 4
