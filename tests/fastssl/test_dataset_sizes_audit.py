"""Training and evaluation on degenerate dataset sizes and label sets: a train set of fewer
than two batches (the MoCo queue cannot avoid stale keys), a kNN bank smaller than the monitor's
``logging.knn_k``, and a val list file with labels the train set lacks; each on real .betons
written by ``write_images.py``."""
import numpy as np
import pytest
from PIL import Image

from fastssl.config import load_settings
from fastssl.evaluation import checked_eval_loaders
from fastssl.trainer import Trainer
from fastssl.training_parts import clamp_queue
from writers.write_images import write_images


def write_set(root, name, labels):
    """A .beton of ``len(labels)`` 40 px JPEGs, written from a list file labelling them."""
    rng = np.random.default_rng(len(labels))
    folder = root / name
    folder.mkdir()
    lines = []
    for i, label in enumerate(labels):
        path = folder / f'{i}.jpg'
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(path, quality=90)
        lines.append(f'{path} {label}')
    (root / f'{name}.txt').write_text('\n'.join(lines) + '\n')
    out = str(root / f'{name}.beton')
    write_images(str(root / f'{name}.txt'), out, workers=1, progress=False)
    return out


@pytest.fixture(scope='module')
def sets(module_tmp):
    root = module_tmp.mktemp('sizes')
    return {'ten': write_set(root, 'ten', [0, 1] * 5),
            'six': write_set(root, 'six', [0, 1, 2] * 2),
            'val': write_set(root, 'val', [0, 1, 5, 0, 1, 5, 7, 0])}


def test_fewer_samples_than_two_batches_warn_that_no_queue_avoids_stale_keys(sets, tmp_path,
                                                                            tiny_args, capsys):
    """10 samples at batch 8: one step an epoch, whose queue of the last step's 8 keys holds
    at least 6 of the next step's samples; the clamp used to say nothing (it only warned
    about a queue larger than N - B keys, which rounds to 0 steps here)."""
    Trainer(load_settings(tiny_args(sets['ten'], tmp_path / 'run', '--moco.queue_size=64')))
    warning = next(line for line in capsys.readouterr().err.splitlines() if 'queue' in line)
    assert warning == (
        "warning: 10 samples are fewer than two steps of batch 8: even the smallest queue, one "
        "step's 8 keys (moco.queue_size=64 is clamped to it), holds keys of samples the next "
        'step draws again, so samples meet their own earlier keys as negatives; use '
        'data.batch_size <= 5')


def test_the_queue_clamp_keeps_its_sizes_and_warns_only_when_it_must(capsys):
    assert clamp_queue(8, 16, 8) == 8 and clamp_queue(64, 40, 8) == 32
    assert capsys.readouterr().err.startswith('warning: moco.queue_size=64 exceeds')
    assert clamp_queue(64, 24, 8, keys_per_sample=2) == 32   # two terms: 16 keys a step
    assert 'using 32' in capsys.readouterr().err
    assert clamp_queue(16, 15, 8, keys_per_sample=2) == 16
    assert "one step's 16 keys, holds" in capsys.readouterr().err
    assert clamp_queue(4, 3, 2) == 2
    assert capsys.readouterr().err.endswith('negatives; use more samples\n')
    assert clamp_queue(16, 32, 8) == 16 and capsys.readouterr().err == ''


def test_knn_monitor_says_when_its_bank_is_smaller_than_knn_k(sets, small_beton, tmp_path,
                                                              tiny_args, capsys):
    """The monitor votes with the whole bank when it holds fewer than ``logging.knn_k``
    images (as ``eval.py knn`` reports ``k`` and ``k_requested``); its knn/top1 used to be
    logged as if of the k asked for."""
    Trainer(load_settings(tiny_args(small_beton, tmp_path / 'a',
                                    f'--logging.knn_train_path={sets["six"]}')))
    assert (f'note: logging.knn_k=200 is more than the 5 neighbours {sets["six"]} gives a kNN '
            f'query (all but itself): the kNN monitor votes with all 5') in capsys.readouterr().out
    Trainer(load_settings(tiny_args(small_beton, tmp_path / 'b', '--logging.knn_k=6',
                                    f'--logging.knn_train_path={sets["six"]}',
                                    f'--logging.knn_val_path={sets["ten"]}')))
    assert 'knn_k' not in capsys.readouterr().out   # a bank of 6, none left out


def test_val_labels_the_train_set_lacks_are_named_as_misses(sets, capsys):
    """List files leave no class names to compare: a val label the train set lacks is scored
    as a miss (docs/evaluation.md), and now one note says how many images that is."""
    checked_eval_loaders(sets['six'], sets['val'], ('eval.train_path', 'eval.val_path'), 4, 32,
                         1)
    assert capsys.readouterr().err == (
        f'note: 3 of the 8 images of eval.val_path {sets["val"]} have labels eval.train_path '
        f'{sets["six"]} lacks (5, 7): they count as misses\n')
    checked_eval_loaders(sets['six'], sets['ten'], ('eval.train_path', 'eval.val_path'), 4, 32,
                         1)
    assert capsys.readouterr().err == ''
