"""The image demo's learning signal on a shortened run of its own recipe: the demo's scripts
build the tiles and the held-out monitor, the real writer and trainer run them, and
scripts/demo_summary.py reads back what the run learnt. No wall-clock bound: what is checked
is that the loss falls well below chance (0.8 ln(K+1)) and the monitor measures the held-out
items before training and after each due epoch."""
import math
import sys

import pytest

pytestmark = pytest.mark.e2e

EPOCHS = 4


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory, run_script, repo):
    out = tmp_path_factory.mktemp('demo_images')
    built = run_script('scripts/demo_images.py', out / 'images')
    assert built.returncode == 0, built.stderr
    for part in ('train', 'monitor/bank', 'monitor/queries'):
        written = run_script('writers/write_images.py', out / 'images' / part,
                             out / f"{part.replace('/', '_')}.beton", '--max-resolution', '128',
                             '--workers', '2')
        assert written.returncode == 0, written.stderr
    trained = run_script(
        'train.py', '--config-file', 'configs/demo_cpu.yaml', f'--data.path={out}/train.beton',
        f'--train.run_dir={out}/run', f'--train.epochs={EPOCHS}', '--logging.knn_every=2',
        '--logging.progress=false', f'--logging.knn_train_path={out}/monitor_bank.beton',
        f'--logging.knn_val_path={out}/monitor_queries.beton', timeout=1800)
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
    items = sorted(p.name for p in (images / 'monitor' / 'bank').iterdir())
    assert items == sorted(p.name for p in (images / 'monitor' / 'queries').iterdir())
    # 5 x 5 tiles per photo: 20 trained on, the 5 on the diagonal held out as items
    assert items == sorted(f'{photo}_tile{k}' for photo in photos for k in range(5))
    for photo in photos:
        assert len(list((images / 'train' / photo).iterdir())) == 20
    for item in items:  # the item as it is, and four augmented views of it
        assert len(list((images / 'monitor' / 'bank' / item).iterdir())) == 1
        assert len(list((images / 'monitor' / 'queries' / item).iterdir())) == 4


def test_loss_falls_below_chance_and_the_monitor_runs_on_the_held_out_items(demo_run, summary):
    run = demo_run / 'run'
    k = summary.queue_size(run)
    assert k == 256                      # the configured queue: the tiles fill it
    logged = summary.scalars(run)
    loss = summary.last_epoch_losses(logged, EPOCHS)['image']
    assert loss < 0.8 * math.log(k + 1)
    monitor = logged['knn/top1']
    steps = [step for step, _ in monitor]
    assert steps[0] == 0 and len(steps) == 1 + EPOCHS // 2    # untrained, every 2 epochs
    assert all(0 <= value <= 100 for _, value in monitor)
    lines, _ = summary.summarise(str(run), classes=100)
    assert any('loss_image' in line and f'K = {k}' in line and 'PASS' in line for line in lines)
    assert any('chance 1.0 %' in line for line in lines)
