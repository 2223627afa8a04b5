"""The invariance-set renderer: deterministic given a seed, magnitudes as recorded, the
generic layout, and one-line errors."""
import json
import os

import numpy as np
import pytest

from fastssl_common.errors import UserError
from writers.render_invariance_sets import (
    MIN_OBJECTS,
    MIN_SIZE,
    level_values,
    render_sets,
)

SMALL = dict(objects=MIN_OBJECTS, instances=3, per_set=3, size=MIN_SIZE,
             transformations=('viewpoint', 'occlusion', 'instance'))


def tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_same_seed_same_files_other_seed_other_images(tmp_path):
    render_sets(str(tmp_path / 'a'), seed=3, **SMALL)
    render_sets(str(tmp_path / 'b'), seed=3, **SMALL)
    render_sets(str(tmp_path / 'c'), seed=4, **SMALL)
    a, b, c = tree(tmp_path / 'a'), tree(tmp_path / 'b'), tree(tmp_path / 'c')
    assert a == b
    assert set(a) == set(c)
    assert sum(a[k] != c[k] for k in a if k.endswith('.png')) > len(a) // 2


def test_manifest_levels_and_generic_layout(tmp_path):
    from fastssl.invariance_data import read_dataset
    out = tmp_path / 'sets'
    render_sets(str(out), seed=0, **SMALL)
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['label'] == 'rendered data' and manifest['seed'] == 0
    view = manifest['transformations']['viewpoint']
    assert [lvl['magnitude'] for lvl in view['levels']] == [15, 30, 60, 90]
    level = view['levels'][1]          # magnitude 30, 3 images: 0, 15, 30 degrees
    assert level['sets'][0]['images'] == ['viewpoint/object00/object00/0.png',
                                          'viewpoint/object00/object00/15.png',
                                          'viewpoint/object00/object00/30.png']
    assert level_values(60, 4) == [0, 20, 40, 60]
    (inst,) = manifest['transformations']['instance']['levels']
    assert inst['magnitude'] is None
    assert {s['target'] for s in inst['sets']} == {'box', 'cylinder'}
    assert all(len(s['images']) == 3 for s in inst['sets'])
    # Each transformation folder is itself a generic-layout root.
    folders = read_dataset('folders', str(out / 'viewpoint'))
    assert len(folders.images) == MIN_OBJECTS * 7   # 0, 7.5, 15, 30, 45, 60, 90 degrees
    rendered = read_dataset('rendered', str(out)).check()
    assert [m.name for m in rendered.measurements][:2] == ['viewpoint 15', 'viewpoint 30']


def test_bad_inputs(tmp_path, run_script, assert_one_line_error):
    render_sets(str(tmp_path / 'x'), **SMALL)
    with pytest.raises(UserError, match='exists'):
        render_sets(str(tmp_path / 'x'), **SMALL)
    with pytest.raises(UserError, match='--per-set must be a whole number >= 3, got 2'):
        render_sets(str(tmp_path / 'y'), **{**SMALL, 'per_set': 2})
    assert not (tmp_path / 'y').exists()
    result = run_script('writers/render_invariance_sets.py', tmp_path / 'z',
                        '--transformations', 'viewpoint,zoom')
    assert_one_line_error(result, "unknown transformation 'zoom'")
    assert not (tmp_path / 'z').exists()


def test_size_has_an_upper_bound(tmp_path, run_script, assert_one_line_error):
    with pytest.raises(UserError, match='--size must be a whole number from 32 to 1024, got 1025'):
        render_sets(str(tmp_path / 'big'), **{**SMALL, 'size': 1025})
    result = run_script('writers/render_invariance_sets.py', tmp_path / 'z', '--size', '100000')
    assert_one_line_error(result, '--size', '1024', '100000')
    assert not (tmp_path / 'z').exists() and not (tmp_path / 'big').exists()
    assert '1024' in run_script('writers/render_invariance_sets.py', '--help').stdout


@pytest.mark.parametrize('names', [',', ' , ', ''])
def test_an_empty_transformation_list_is_refused(tmp_path, run_script, assert_one_line_error,
                                                 names):
    result = run_script('writers/render_invariance_sets.py', tmp_path / 'z',
                        '--transformations', names)
    assert_one_line_error(result, '--transformations')
    assert not (tmp_path / 'z').exists()
    with pytest.raises(UserError, match='--transformations names no transformation'):
        render_sets(str(tmp_path / 'y'), **{**SMALL, 'transformations': ()})
    assert list(tmp_path.iterdir()) == []


def test_size_below_what_eval_scores_is_refused(tmp_path, run_script, assert_one_line_error):
    from fastssl.config import RESOLUTION_MIN
    assert MIN_SIZE == RESOLUTION_MIN   # eval.py invariance refuses a smaller resolution
    with pytest.raises(UserError, match='--size must be a whole number from 32 to 1024, got 16'):
        render_sets(str(tmp_path / 'small'), **{**SMALL, 'size': 16})
    result = run_script('writers/render_invariance_sets.py', tmp_path / 'z', '--size', '16')
    assert_one_line_error(result, '--size', 'from 32 to 1024', 'got 16')
    assert list(tmp_path.iterdir()) == []


def test_fewer_objects_than_the_score_can_tell_apart_are_refused(tmp_path, run_script,
                                                                 assert_one_line_error):
    with pytest.raises(UserError, match=f'--objects must be a whole number >= {MIN_OBJECTS} '
                                        r'\(with fewer, the invariance score ignores one image '
                                        r'of each set .*\), got 20'):
        render_sets(str(tmp_path / 'few'), **{**SMALL, 'objects': MIN_OBJECTS - 1})
    result = run_script('writers/render_invariance_sets.py', tmp_path / 'z', '--objects', '2')
    assert_one_line_error(result, '--objects', f'>= {MIN_OBJECTS}', 'got 2')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('per_set', [3, 4, 10])
def test_min_objects_is_the_fewest_where_a_set_counts_whole(per_set):
    """On a curve (one set of per_set images per object, set = target), a neuron that fires
    on every image of object 0 and one that misses its last image score alike below
    MIN_OBJECTS objects (the score counts per_set - 1 firing images), apart from it on."""
    from fastssl.invariance import invariance_score

    def object0(objects):   # (whole, misses one) scores of object 0, top-1 of one neuron
        rng = np.random.default_rng(per_set)
        features = rng.uniform(0, 1, (objects * per_set, 2))
        features[:per_set] = 10 + np.arange(per_set)[:, None]   # distinct: no ties at t+
        features[per_set - 1, 1] = -1
        sets = np.repeat(np.arange(objects), per_set)
        return [invariance_score(features[:, [j]], sets, sets, ks=(1,)).per_target[1][0]
                for j in (0, 1)]
    whole, misses_one = object0(MIN_OBJECTS - 1)
    assert whole == misses_one
    whole, misses_one = object0(MIN_OBJECTS)
    assert whole > misses_one


def test_overwrite_replaces_only_a_folder(tmp_path, run_script, assert_one_line_error):
    file = tmp_path / 'file'
    file.write_text('keep me')
    folder = tmp_path / 'folder'
    folder.mkdir()
    link = tmp_path / 'link'
    link.symlink_to(folder)
    # refused before anything is rendered, not after (it was NotADirectoryError at the end)
    for out in (str(file), f'{file}/'):
        with pytest.raises(UserError, match=f'OUT {file} is not a folder: --overwrite replaces '
                                            'only a folder'):
            render_sets(out, overwrite=True, **SMALL)
    with pytest.raises(UserError, match=f'OUT {link} is a symbolic link'):
        render_sets(str(link), overwrite=True, **SMALL)
    # without --overwrite it said 'output folder FILE exists'
    with pytest.raises(UserError, match=f'^OUT {file} exists and is not a folder: choose a new '
                                        f'folder$'):
        render_sets(str(file), **SMALL)
    result = run_script('writers/render_invariance_sets.py', file, '--overwrite')
    assert_one_line_error(result, str(file), 'not a folder')
    assert file.read_text() == 'keep me' and link.resolve() == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file', 'folder', 'link']
    render_sets(str(folder), overwrite=True, **SMALL)   # an empty folder is replaced
    assert (folder / 'manifest.json').is_file()
    render_sets(str(folder), overwrite=True, **SMALL)   # and so is an earlier render
    # a folder of something else, given by mistake, is not removed
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'holiday.jpg').write_bytes(b'not rendered')
    (tmp_path / 'photos' / 'manifest.json').write_text('{"format": "someone else\'s"}')
    with pytest.raises(UserError, match=f'OUT {tmp_path / "photos"} holds no rendered data'):
        render_sets(str(tmp_path / 'photos'), overwrite=True, **SMALL)
    assert (tmp_path / 'photos' / 'holiday.jpg').read_bytes() == b'not rendered'
