"""The invariance-set renderer: deterministic given a seed, magnitudes as recorded, the
generic layout, and one-line errors."""
import json
import os

import pytest

from fastssl_common.errors import UserError
from writers.render_invariance_sets import level_values, render_sets

SMALL = dict(objects=2, instances=3, per_set=3, size=24,
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
    assert len(folders.images) == 2 * 7          # 0, 7.5, 15, 30, 45, 60, 90 degrees
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
    with pytest.raises(UserError, match='--size must be a whole number from 16 to 1024, got 1025'):
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
