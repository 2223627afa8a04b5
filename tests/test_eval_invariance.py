"""``eval.py invariance`` end to end on rendered data with two torchvision ResNet-18 state
dicts, checked against features computed independently (torchvision transforms + the model
itself); outputs (JSON, plot, TensorBoard); bad input fails before any work, in one line."""
import json
import os
import re

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

from eval import main
from fastssl.invariance import invariance_score
from fastssl.invariance_settings import Bootstrap
from fastssl_common.errors import UserError, run_cli
from writers.render_invariance_sets import render_sets


@pytest.fixture(scope='module')
def rendered(module_tmp):
    root = module_tmp.mktemp('inv') / 'rendered'
    render_sets(str(root), objects=21, instances=3, per_set=3, size=32, seed=1,
                transformations=('viewpoint', 'instance'))
    return root


@pytest.fixture(scope='module')
def checkpoints(module_tmp):
    folder = module_tmp.mktemp('ckpt')
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = folder / f'resnet18_seed{seed}.pth'
        torch.save(torchvision.models.resnet18().state_dict(), path)
        paths.append(str(path))
    return paths


def reference_features(path, image_paths, size):
    """The authors' pipeline: PIL -> Resize((size, size)) -> ToTensor -> Normalize -> model."""
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(path))
    model.fc = torch.nn.Identity()
    model.eval()
    transform = T.Compose([T.Resize((size, size)), T.ToTensor(),
                           T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([transform(Image.open(p).convert('RGB')) for p in image_paths])
    with torch.no_grad():
        return model(x.contiguous(memory_format=torch.channels_last)).numpy()


def test_rendered_end_to_end(rendered, checkpoints, tmp_path, capsys):
    out, plot, runs = tmp_path / 'inv.json', tmp_path / 'curves.png', tmp_path / 'tb'
    assert main(['invariance', '--invariance.kind=rendered', f'--invariance.root={rendered}',
                 f'--invariance.checkpoints=first={checkpoints[0]},{checkpoints[1]}',
                 '--invariance.device=cpu', '--invariance.batch_size=16',
                 f'--invariance.output={out}', f'--invariance.plot={plot}',
                 f'--invariance.run_dir={runs}']) == 0
    printed = capsys.readouterr().out
    assert 'rendered data' in printed and 'viewpoint' in printed
    assert 'first' in printed and 'resnet18_seed1' in printed
    doc = json.loads(out.read_text())
    assert doc['label'] == 'rendered data'
    assert [c['name'] for c in doc['checkpoints']] == ['first', 'resnet18_seed1', 'random_init']
    assert doc['checkpoints'][0]['source_format'] == 'torchvision state dict'
    assert doc['checkpoints'][2] == {'name': 'random_init', 'path': None, 'arch': 'resnet18',
                                     'source_format': 'random init (seed 0)',
                                     'feature_dim': 512, 'reference': True}
    assert doc['bootstrap'] == {'resamples': 1000, 'confidence': 0.95, 'seed': 0,
                                'unit': 'targets'}
    for r in doc['results']:
        assert r['ci_low'].keys() == r['ci_high'].keys() == r['scores'].keys() == {'10', '25'}
        assert all(r['ci_low'][k] <= r['ci_high'][k] for k in r['scores'])
    # random_init is torchvision's resnet18 init under seed 0: the first checkpoint's weights.
    by_name = {}
    for r in doc['results']:
        by_name.setdefault(r['checkpoint'], []).append(
            (r['measurement'], r['scores'], r['ci_low'], r['ci_high']))
    assert by_name['random_init'] == by_name['first']
    manifest = json.loads((rendered / 'manifest.json').read_text())
    images = sorted({f for entry in manifest['transformations'].values()
                     for lvl in entry['levels'] for s in lvl['sets'] for f in s['images']})
    for c, path in enumerate(checkpoints):
        feats = dict(zip(images, reference_features(
            path, [os.path.join(rendered, f) for f in images], 32)))
        mine = [r for r in doc['results'] if r['checkpoint'] == doc['checkpoints'][c]['name']]
        assert len(mine) == 5                              # 4 viewpoint levels + instance
        for r in mine:
            entry = manifest['transformations'][r['transformation']]
            level = next(lvl for lvl in entry['levels'] if lvl['magnitude'] == r['magnitude'])
            files = [(f, s['set'], s['target']) for s in level['sets'] for f in s['images']]
            expected = invariance_score(np.stack([feats[f] for f, _, _ in files]),
                                        [z for _, z, _ in files], [y for _, _, y in files],
                                        bootstrap=Bootstrap())
            assert r['scores'] == pytest.approx({str(k): v for k, v in expected.scores.items()},
                                                rel=1e-6)
            assert r['ci_low'] == pytest.approx(
                {str(k): lo for k, (lo, _) in expected.ci.items()}, rel=1e-6, abs=1e-9)
    with Image.open(plot) as image:
        assert image.format == 'PNG' and image.size[0] > 300
    assert sorted(os.listdir(runs)) == sorted(['first', 'resnet18_seed1', 'random_init'] +
                                              [f for f in os.listdir(runs) if 'tfevents' in f])
    assert any('tfevents' in f for f in os.listdir(runs / 'first'))


def test_bad_inputs_fail_before_any_work(rendered, checkpoints, tmp_path, capsys):
    base = ['invariance', '--invariance.device=cpu']
    cases = [
        (['--invariance.kind=aloi_view', f'--invariance.root={rendered}',
          f'--invariance.checkpoints={checkpoints[0]}'], 'expected one folder per object'),
        (['--invariance.kind=rendered', f'--invariance.root={rendered}',
          f'--invariance.checkpoints={tmp_path}/missing.pt'], 'checkpoint not found'),
        (['--invariance.kind=folders', f'--invariance.root={rendered}/viewpoint',
          f'--invariance.checkpoints={checkpoints[0]}', f'--invariance.plot={tmp_path}/p.png'],
         'invariance.plot needs measurements with magnitudes'),
        (['--invariance.kind=rendered', f'--invariance.root={rendered}',
          f'--invariance.checkpoints={checkpoints[0]}', '--invariance.top_k=10,600'],
         'invariance.top_k=600 exceeds the 512 features'),
    ] + [(['--invariance.kind=rendered', f'--invariance.root={rendered}',
           f'--invariance.checkpoints={checkpoints[0]}', f'--invariance.{key}={value}'],
          f'invariance.{key} must be{bounds}') for key, value, bounds in
         (('batch_size', 0, ''), ('num_workers', -1, ''), ('resolution', -1, ''),
          ('bootstrap', 99, r' >= 100, got 99'), ('confidence', 1, r' in \(0, 1\), got 1'),
          ('confidence', 0, r' in \(0, 1\), got 0'))] + [
        (['--invariance.kind=rendered', f'--invariance.root={rendered}',
          f'--invariance.checkpoints={checkpoints[0]}', f'--invariance.{key}={value}'],
         f"'invariance.{key}' must be {expected}") for key, value, expected in
        (('resample', 'images', "one of targets/sets, got 'images'"),
         ('reference', 'maybe', 'a boolean'))]
    for args, needle in cases:
        with pytest.raises(UserError, match=needle):
            main(base + args)
    # Malformed manifests: missing 'levels', transformations as a list, string magnitude.
    good = json.loads((rendered / 'manifest.json').read_text())
    first = next(iter(good['transformations']))
    broken = [{**good, 'transformations': {first: {}}},
              {**good, 'transformations': list(good['transformations'])},
              {**good, 'transformations': {first: {**good['transformations'][first], 'levels': [
                  {**good['transformations'][first]['levels'][0], 'magnitude': 'ten'}]}}}]
    for i, manifest in enumerate(broken):
        root = tmp_path / f'manifest{i}'
        root.mkdir()
        (root / 'manifest.json').write_text(json.dumps(manifest))
        with pytest.raises(UserError, match='is not a rendered data manifest'):
            main(base + ['--invariance.kind=rendered', f'--invariance.root={root}',
                         f'--invariance.checkpoints={checkpoints[0]}'])
    bad = tmp_path / 'bad.pt'
    torch.save({'weights': torch.zeros(3)}, bad)
    one_target = tmp_path / 'one' / 'cat' / 'set0'
    one_target.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(one_target / f'{i}.png')
    # The CLI contract (one "error:" line, exit 2), in this process: no second torch import.
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ['invariance', '--invariance.kind=folders',
                       f'--invariance.root={tmp_path / "one"}',
                       f'--invariance.checkpoints={bad}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert err[0].startswith('error: ') and 'at least two targets' in err[0]
    with pytest.raises(UserError, match='matches no known checkpoint format'):
        main(base + ['--invariance.kind=rendered', f'--invariance.root={rendered}',
                     f'--invariance.checkpoints={bad}'])
    # with several checkpoints the line must say which one diverged: NaN weights are named
    # when read, finite weights that overflow when the features are
    diverged = tmp_path / 'diverged.pth'
    state = torch.load(checkpoints[0])
    state['conv1.weight'][0, 0, 0, 0] = float('nan')
    torch.save(state, diverged)
    with pytest.raises(UserError, match=re.escape(f'checkpoint {diverged} has non-finite '
                                                  f'weights (conv1.weight holds NaN')):
        main(base + ['--invariance.kind=rendered', f'--invariance.root={rendered}',
                     f'--invariance.checkpoints={checkpoints[0]},{diverged}'])
    state['conv1.weight'] = torch.full_like(state['conv1.weight'], 1e38)
    torch.save(state, diverged)
    with pytest.raises(UserError, match=f'^{diverged} gives NaN or infinite features on '):
        main(base + ['--invariance.kind=rendered', f'--invariance.root={rendered}',
                     f'--invariance.checkpoints={checkpoints[0]},{diverged}'])


def test_random_init_reference_row(rendered, checkpoints, tmp_path, capsys):
    """Present in the table and the JSON, the same in two runs, absent with reference=false."""
    base = ['invariance', '--invariance.kind=rendered', f'--invariance.root={rendered}',
            f'--invariance.checkpoints={checkpoints[1]}', '--invariance.device=cpu',
            '--invariance.top_k=10']
    docs, printed = [], []
    for run in range(2):
        out = tmp_path / f'run{run}.json'
        assert main(base + [f'--invariance.output={out}']) == 0
        printed.append(capsys.readouterr().out)
        docs.append(json.loads(out.read_text()))
    rows = [line.split() for line in printed[0].splitlines()]
    assert sum(row[:1] == ['random_init'] for row in rows) == 2     # viewpoint, instance tables
    assert 'random_init: the same architecture untrained' in printed[0]
    reference = [[r for r in doc['results'] if r['checkpoint'] == 'random_init'] for doc in docs]
    assert len(reference[0]) == 5 and reference[0] == reference[1]
    assert printed[0].replace('run0.json', 'run1.json') == printed[1]
    out = tmp_path / 'none.json'
    assert main(base + [f'--invariance.output={out}', '--invariance.reference=false']) == 0
    assert not any(line.startswith('random_init') for line in
                   capsys.readouterr().out.splitlines())
    doc = json.loads(out.read_text())
    assert [c['name'] for c in doc['checkpoints']] == ['resnet18_seed1']
    assert {r['checkpoint'] for r in doc['results']} == {'resnet18_seed1'}
    # a checkpoint may not take the reference's name: two rows of one name, one of them not
    # the untrained network, used to share the reference's cells
    named = [*base[:3], f'--invariance.checkpoints=random_init={checkpoints[1]}', *base[4:]]
    with pytest.raises(UserError, match=f'{checkpoints[1]} is named random_init, the name of '
                                        f'the untrained reference'):
        main(named)
    assert main(named + ['--invariance.reference=false']) == 0


def test_a_refused_run_leaves_no_output_folders_and_replaces_no_input(rendered, checkpoints,
                                                                       tmp_path):
    """Output folders are made before the work and removed again when the run is refused; an
    output onto a checkpoint or into the dataset root is refused, every input as it was."""
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(UserError, match='holds no images'):
        main(['invariance', '--invariance.kind=folders', f'--invariance.root={empty}',
              f'--invariance.checkpoints={checkpoints[0]}', '--invariance.device=cpu',
              f'--invariance.output={tmp_path}/out/json/scores.json',
              f'--invariance.plot={tmp_path}/plots/curves.png',
              f'--invariance.run_dir={tmp_path}/tb/run'])
    assert sorted(os.listdir(tmp_path)) == ['empty']
    manifest = rendered / 'manifest.json'
    before = {path: open(path, 'rb').read() for path in (manifest, checkpoints[0])}
    base = ['invariance', '--invariance.kind=rendered', f'--invariance.root={rendered}',
            f'--invariance.checkpoints={checkpoints[0]}', '--invariance.device=cpu']
    for option, needle in ((f'output={checkpoints[0]}', 'is an input of this run'),
                           (f'output={manifest}', f'is inside {rendered}, an input'),
                           (f'run_dir={rendered}/tb', f'is inside {rendered}, an input')):
        with pytest.raises(UserError, match=needle):
            main(base + [f'--invariance.{option}'])
    assert not (rendered / 'tb').exists()
    assert {path: open(path, 'rb').read() for path in before} == before
