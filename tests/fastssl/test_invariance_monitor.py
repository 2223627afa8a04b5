"""fastssl/invariance_monitor.py: ``logging.invariance_every`` on tiny real runs logs
``invariance/<transformation>/top10|top25`` and ``invariance/seconds`` (read back from the event
files) on the default rendered data, reproduced by ``eval.py invariance`` on the checkpoint;
training with the monitor, interrupted and resumed, ends bit-identical to training without it;
measuring leaves the encoder (mode, BatchNorm statistics) and the random streams as they were;
a set folder that is missing or holds no scorable set is one line naming the key."""
import json
import random

import numpy as np
import pytest
import torch

from eval import main as eval_main
from fastssl import invariance_monitor
from fastssl.config import load_settings
from fastssl.encoder import Encoder
from fastssl.invariance_monitor import InvarianceMonitor, read_sets
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError
from writers.render_invariance_sets import TRANSFORMATIONS, render_sets

# rendered data small enough for a test (the default renders 24 objects at 64 px; 21 is the
# fewest the score can tell apart)
TINY_RENDER = ('--objects', '21', '--instances', '3', '--per-set', '3', '--size', '32',
               '--seed', '1')
TAGS = [f'invariance/{t}/top{k}' for t in TRANSFORMATIONS for k in (10, 25)]


@pytest.fixture(scope='module')
def tiny_sets(module_tmp):
    root = module_tmp.mktemp('sets') / 'rendered'
    render_sets(str(root), *(int(v) for v in TINY_RENDER[1::2]))
    return root


@pytest.fixture(scope='module')
def runs(small_beton, tiny_args, module_tmp):
    """Two epochs of the same tiny run: 'plain' without the monitor; 'monitored' with it on the
    default (rendered) sets every epoch, stopped after the first epoch and resumed."""
    root = module_tmp.mktemp('runs')
    common = ('--train.epochs=2', '--train.checkpoint_every=1', '--augment.placement=gpu')

    def settings(name, *extra):
        return load_settings(tiny_args(small_beton, root / name, *common, *extra))
    Trainer(settings('plain')).fit()
    monitored = ('--logging.invariance_every=1',)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(invariance_monitor, 'RENDER_ARGS', TINY_RENDER)
        Trainer(settings('monitored', *monitored)).fit(stop_after=1)
        Trainer(settings('monitored', *monitored, '--train.resume=true')).fit()
    return root / 'plain', root / 'monitored'


def test_the_tags_are_logged_before_training_and_every_epoch(runs, scalars):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = runs
    assert (run / invariance_monitor.RENDERED_DIR / 'manifest.json').is_file()
    events = EventAccumulator(str(run))
    events.Reload()
    logged = [tag for tag in events.Tags()['scalars'] if tag.startswith('invariance/')]
    assert sorted(logged) == sorted(TAGS + ['invariance/seconds'])
    for tag in logged:  # untrained, after epoch 1 (2 steps), after epoch 2 (resumed)
        assert [e.step for e in events.Scalars(tag)] == [0, 2, 4], tag
    assert all(0 <= v <= 100 for tag in TAGS for v in scalars(run, tag))
    assert all(v > 0 for v in scalars(run, 'invariance/seconds'))


def test_training_is_unchanged_by_the_monitor_and_resume_stays_exact(runs, scalars,
                                                                     model_state):
    plain, monitored = runs
    for tag in ('train/loss', 'train/loss_image'):
        assert scalars(plain, tag) == scalars(monitored, tag), tag
    (a, opt_a), (b, opt_b) = model_state(plain), model_state(monitored)
    assert a.keys() == b.keys()
    for key in a:  # weights, BatchNorm running statistics, queue
        assert torch.equal(a[key], b[key]), key
    for sa, sb in zip(opt_a['state'].values(), opt_b['state'].values()):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])


def test_eval_invariance_on_the_checkpoint_reproduces_the_last_scores(runs, scalars,
                                                                      tmp_path):
    _, run = runs
    out = tmp_path / 'invariance.json'
    assert eval_main(['invariance', '--invariance.kind=rendered',
                      f'--invariance.root={run / invariance_monitor.RENDERED_DIR}',
                      f"--invariance.checkpoints={run / 'checkpoint_last.pt'}",
                      '--invariance.reference=false', '--invariance.batch_size=8',
                      '--invariance.num_workers=1', '--invariance.device=cpu',
                      f'--invariance.output={out}']) == 0
    results = json.loads(out.read_text())['results']
    for t in TRANSFORMATIONS:  # the monitor scores each transformation's widest magnitude
        mine = [r for r in results if r['transformation'] == t]
        widest = max(mine, key=lambda r: r['magnitude'] or 0)
        for k in ('10', '25'):
            logged = scalars(run, f'invariance/{t}/top{k}')[-1]
            assert logged == pytest.approx(widest['scores'][k], rel=1e-6), (t, k)


@pytest.mark.parametrize('training', [True, False])
def test_measuring_leaves_the_encoder_and_the_random_streams_as_they_were(tiny_sets, training):
    torch.manual_seed(0)
    encoder = Encoder('resnet18', 64, 128).train(training)
    before = {name: value.clone() for name, value in encoder.state_dict().items()}
    streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
    monitor = InvarianceMonitor(read_sets(str(tiny_sets)), batch_size=8, num_workers=1)
    assert [m.name for m in monitor.measurements] == [
        'viewpoint 90', 'light_direction 180', 'light_colour 100', 'occlusion 75', 'instance']
    scalars = monitor.measure(encoder, torch.device('cpu'))
    assert sorted(scalars) == sorted(TAGS + ['invariance/seconds'])
    assert all(m.training == training for m in encoder.modules())
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert torch.equal(torch.get_rng_state(), streams[0])
    assert np.array_equal(np.random.get_state()[1], streams[1][1])
    assert random.getstate() == streams[2]
    assert monitor.summary(scalars).startswith('invariance top-10 (rendered data): viewpoint ')


def test_a_set_folder_in_the_generic_layout_is_read_as_such(tiny_sets):
    data = read_sets(str(tiny_sets / 'viewpoint'))
    assert data.dataset == 'folders' and [m.name for m in data.measurements] == ['sets']


def test_bad_sets_are_one_line_naming_the_key_before_any_folder(
        small_beton, tiny_args, tmp_path, run_script, assert_one_line_error):
    run = tmp_path / 'run'
    missing = tmp_path / 'missing'
    assert_one_line_error(
        run_script('train.py', *tiny_args(small_beton, run, '--logging.invariance_every=1',
                                          f'--logging.invariance_sets={missing}')),
        'logging.invariance_sets', missing)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(UserError, match=f'logging.invariance_sets={empty}: .* holds no images'):
        Trainer(load_settings(tiny_args(small_beton, run, '--logging.invariance_every=1',
                                        f'--logging.invariance_sets={empty}')))
    assert not run.exists()


def test_an_unreadable_set_image_stops_the_run_before_its_files_are_written(
        small_beton, tiny_args, tiny_sets, tmp_path):
    """The images are read when the untrained network is measured; a rerun after the fix
    used to add a second events file next to the first one's config and events."""
    import shutil
    sets = tmp_path / 'sets'
    shutil.copytree(tiny_sets, sets)
    image = sorted((sets / 'viewpoint').rglob('*.png'))[0]
    image.write_bytes(image.read_bytes()[:40])
    run = tmp_path / 'run'
    with pytest.raises(UserError, match=f'cannot read image .*{image.name}'):
        Trainer(load_settings(tiny_args(small_beton, run, '--logging.invariance_every=1',
                                        f'--logging.invariance_sets={sets}'))).fit()
    assert not run.exists() or list(run.iterdir()) == []


def test_bad_keys_are_refused_when_the_config_is_read(small_beton, tiny_args, tmp_path):
    with pytest.raises(UserError, match='logging.invariance_every must be >= 0, got -1'):
        load_settings(tiny_args(small_beton, tmp_path, '--logging.invariance_every=-1'))
    with pytest.raises(UserError, match='logging.invariance_kind'):
        load_settings(tiny_args(small_beton, tmp_path, '--logging.invariance_kind=imagenet'))
    with pytest.raises(UserError, match='logging.invariance_kind=aloi_view needs '
                                        'logging.invariance_sets'):
        load_settings(tiny_args(small_beton, tmp_path, '--logging.invariance_every=1',
                                '--logging.invariance_kind=aloi_view'))
