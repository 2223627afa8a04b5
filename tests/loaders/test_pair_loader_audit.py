"""The pair loader as a researcher's own training loop uses it: its arguments, and epochs that
are left early or overlap."""
import queue
import threading
import time
from types import SimpleNamespace

import numba
import pytest

from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader
from loaders.kept_buffers import next_batch
from loaders.pair_loader import MultiViewLoader

THREADS = numba.config.NUMBA_NUM_THREADS
BAD_ARGUMENTS = [  # (keyword overrides, the message)
    (dict(batches_ahead=0), 'batches_ahead must be a whole number >= 1, got 0'),
    (dict(batches_ahead=-1), 'batches_ahead must be a whole number >= 1, got -1'),
    (dict(num_workers=-1), 'num_workers must be a whole number >= 1, or 0 (all cores), got -1'),
    (dict(num_workers=1.5), 'num_workers must be a whole number >= 1, or 0 (all cores), got 1.5'),
    (dict(num_workers='2'), "num_workers must be a whole number >= 1, or 0 (all cores), got '2'"),
    (dict(num_workers=THREADS + 1),
     f'num_workers={THREADS + 1} exceeds the {THREADS} threads FFCV can run on this machine'),
]


@pytest.mark.parametrize('overrides, message', BAD_ARGUMENTS)
def test_bad_loading_arguments_are_refused_before_loading(overrides, message, tmp_path):
    """batches_ahead=0 used to repeat batches silently (FFCV's queue is then unbounded and its
    thread overwrites the batches not yet read: an epoch of 0..15 gave [12, 13], [14, 15] four
    times); num_workers failed in FFCV or Numba, or took -1 for all cores."""
    missing = str(tmp_path / 'absent.beton')  # never opened: the checks come first
    with pytest.raises(UserError) as caught:
        MultiViewLoader(missing, 2, 16, **overrides)
    assert str(caught.value).startswith(message)
    if 'num_workers' in overrides:
        with pytest.raises(UserError) as caught:
            make_eval_loader(missing, 2, 16, **overrides)
        assert str(caught.value).startswith(message)


def order(loader, batches=None):
    """The sample indices of the loader's next iteration (its first ``batches`` batches)."""
    seen = []
    for k, (_, indices, _) in enumerate(loader):
        if k == batches:
            break
        seen.append(indices.tolist())
    return seen


def test_an_epoch_left_early_still_advances_the_epoch(small_beton, python_pipelines):
    """A loop that breaks after a step budget used to see epoch 0's order and draws again on
    every pass."""
    loader = MultiViewLoader(small_beton, 2, 8, seed=1, order='random')
    first = order(loader, batches=2)
    assert loader.epoch == 1
    second = order(loader, batches=2)
    assert loader.epoch == 2 and second != first
    loader.set_epoch(1)
    assert order(loader)[:2] == second
    loader.set_epoch(0)
    assert order(loader)[:2] == first


def test_an_iteration_ended_by_a_later_one_says_so(small_beton, python_pipelines):
    """Its queued batches point into buffers the later epoch fills: it used to hand them out,
    then report that the loading thread 'stopped with an error (its traceback is printed
    above)', with no traceback anywhere."""
    loader = MultiViewLoader(small_beton, 1, 8, order='sequential', num_workers=1)
    earlier = iter(loader)
    next(earlier)
    time.sleep(0.2)             # its thread fills the queue
    later = iter(loader)
    assert next(later)[1].tolist() == [0]
    with pytest.raises(RuntimeError, match='ended by a later iteration of the same loader'):
        next(earlier)
    assert [int(i) for _, indices, _ in later for i in indices] == list(range(1, 16))


class _StoppedWhileTakingTheLockBack(threading.Condition):
    """A Ctrl-C that lands while ``Condition.wait`` takes its lock back: CPython's lock
    acquisition is interruptible, so the KeyboardInterrupt leaves the lock unheld."""

    def wait(self, timeout=None):
        self.release()
        raise KeyboardInterrupt


def test_a_stop_while_waiting_for_a_batch_stays_a_stop():
    """The with-block's release of the unheld lock raised 'release unlocked lock', hiding the
    stop: the command printed a RuntimeError traceback instead of `interrupted`."""
    batches = queue.Queue()
    batches.not_empty = _StoppedWhileTakingTheLockBack(batches.mutex)
    epoch = SimpleNamespace(output_queue=batches, is_alive=lambda: True,  # FFCV's iterator
                            terminate_event=threading.Event())
    with pytest.raises(KeyboardInterrupt):
        next_batch(epoch)


@pytest.mark.parametrize('entry', [('image',), ('image', 2.5), ('image', (('a', 'full'),)),
                                   'image'])
def test_a_malformed_view_fields_entry_is_named(entry):
    """('image', 2.5) gave "'float' object is not iterable", ('image',) "not enough values to
    unpack": Python's words, not the argument's."""
    from loaders.pair_loader import view_plan
    with pytest.raises(ValueError, match=r'view_fields holds entries \(field, n\) or .*, got'):
        view_plan([entry])
