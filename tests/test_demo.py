"""The image demo's learning signal on a shortened run of its own recipe: the demo's scripts
build the tiles and the held-out monitor, the real writer and trainer run them, and
scripts/demo_summary.py reads back what the run learnt. No wall-clock bound: what is checked
is that the loss falls well below chance (0.8 ln(K+1)) and that the held-out monitor, measured
before training and after each due epoch, rises."""
import math
import sys

import pytest

pytestmark = pytest.mark.e2e

EPOCHS = 4
MONITOR_RISE = 3   # points, in this shortened run (the demo's own bar is 10)


@pytest.fixture(scope='module')
def demo_run(module_tmp, run_script, repo):
    out = module_tmp.mktemp('demo_images')
    built = run_script('scripts/demo_images.py', out / 'images')
    assert built.returncode == 0, built.stderr
    for part in ('train', 'queries'):
        written = run_script('writers/write_images.py', out / 'images' / part,
                             out / f'{part}.beton', '--max-resolution', '128', '--workers', '2')
        assert written.returncode == 0, written.stderr
    trained = run_script(
        'train.py', '--config-file', 'configs/demo_cpu.yaml', f'--data.path={out}/train.beton',
        f'--train.run_dir={out}/run', f'--train.epochs={EPOCHS}', '--logging.knn_every=2',
        '--logging.progress=false', f'--logging.knn_train_path={out}/train.beton',
        f'--logging.knn_val_path={out}/queries.beton', timeout=1800)
    assert trained.returncode == 0, trained.stderr
    return out


@pytest.fixture(scope='module')
def summary(repo):
    sys.path.insert(0, f'{repo}/scripts')
    import demo_summary
    yield demo_summary
    sys.path.remove(f'{repo}/scripts')


def test_held_out_tiles_are_the_monitor_and_not_trained_on(demo_run):
    images = demo_run / 'images'
    photos = sorted(p.name for p in (images / 'train').iterdir())
    # the monitor's classes are the photos: the bank is the training set, labelled by photo
    assert photos == sorted(p.name for p in (images / 'queries').iterdir())
    assert len(photos) >= 15
    for photo in photos:
        # 5 x 5 tiles per photo: 20 trained on; the 5 on the diagonal held out, 4 views each
        assert len(list((images / 'train' / photo).iterdir())) == 20
        assert len(list((images / 'queries' / photo).iterdir())) == 5 * 4


def test_loss_falls_below_chance_and_the_held_out_monitor_rises(demo_run, summary):
    run = demo_run / 'run'
    k = summary.queue_size(run)
    assert k == 256                      # the configured queue: the tiles fill it
    logged = summary.scalars(run)
    loss = summary.last_epoch_losses(logged, EPOCHS)['image']
    assert loss < 0.8 * math.log(k + 1)
    monitor = logged['knn/top1']
    steps = [step for step, _ in monitor]
    assert steps[0] == 0 and len(steps) == 1 + EPOCHS // 2    # untrained, every 2 epochs
    # augmented views of held-out tiles, named by photo: the untrained network is far from
    # perfect, and training on the other tiles of the same photos helps it
    first, last = monitor[0][1], monitor[-1][1]
    assert first < 50 and last >= first + MONITOR_RISE, monitor
    lines, _ = summary.summarise(str(run), classes=20)
    assert any('loss_image' in line and f'K = {k}' in line and 'PASS' in line for line in lines)
    assert any('chance 5.0 %' in line for line in lines)
