"""A new epoch starts after one left near its end (a break, a peek at the first batch)."""
import threading

from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import MultiViewLoader


def finishes(work, seconds=60):
    """``work()``'s result, or None if it has not returned after ``seconds`` (it hung)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


def test_a_full_pass_after_a_peek_at_the_first_batch(small_beton, python_pipelines):
    """16 samples in batches of 4: after the first batch the loading thread queues the other
    three and waits, without a timeout, to queue the end of the epoch; the next epoch waited
    for that thread forever."""
    loader = make_eval_loader(small_beton, 4, 16)
    images, _ = next(iter(loader))
    assert tuple(images.shape) == (4, 16, 16, 3)
    labels = finishes(lambda: [int(y) for _, labels in loader for y in labels.reshape(-1)])
    assert labels is not None and len(labels) == 16


def test_an_epoch_after_one_left_with_a_break(small_beton, python_pipelines):
    loader = MultiViewLoader(small_beton, 4, 16, order='sequential', num_workers=1)
    for _ in loader:
        break
    seen = finishes(lambda: [int(i) for _, indices, _ in loader for i in indices])
    assert seen == list(range(16))
