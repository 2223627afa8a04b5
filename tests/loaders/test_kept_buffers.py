import numpy as np
import pytest
from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.operation import Operation
from ffcv.transforms import ToTensor

from loaders.kept_buffers import KeptBuffersLoader


def make(loader_class, path):
    pipelines = {'image': [CenterCropRGBImageDecoder((24, 24), ratio=1.0), ToTensor()],
                 'label': [IntDecoder(), ToTensor()]}
    return loader_class(path, batch_size=3, num_workers=1, order=OrderOption.RANDOM, seed=5,
                        pipelines=pipelines, drop_last=True, batches_ahead=1)


def epoch_batches(loader):
    """Copies of one epoch's images and labels, and the addresses of the images' buffers."""
    images, labels, addresses = [], [], set()
    for image, label in loader:
        images.append(image.numpy().copy())
        labels.append(label.numpy().copy())
        addresses.add(image.data_ptr())
    return np.concatenate(images), np.concatenate(labels), addresses


def test_every_epoch_matches_stock_ffcv_in_the_first_epochs_buffers(small_beton,
                                                                     python_pipelines):
    kept, stock = make(KeptBuffersLoader, small_beton), make(Loader, small_beton)
    first_addresses = None
    for epoch in range(3):
        images, labels, addresses = epoch_batches(kept)
        stock_images, stock_labels, _ = epoch_batches(stock)
        np.testing.assert_array_equal(images, stock_images)
        np.testing.assert_array_equal(labels, stock_labels)
        if first_addresses is None:
            first_addresses = addresses
        assert addresses <= first_addresses, f'epoch {epoch} wrote into new buffers'


def test_the_previous_epochs_thread_has_stopped_before_the_next_epoch_starts(small_beton,
                                                                             python_pipelines):
    loader = make(KeptBuffersLoader, small_beton)
    abandoned = iter(loader)
    next(abandoned)                    # one batch, then the user moves on without closing it
    assert abandoned.iterator.is_alive()
    images, labels, _ = epoch_batches(loader)
    assert not abandoned.iterator.is_alive()
    stock = make(Loader, small_beton)
    epoch_batches(stock)
    stock_images, stock_labels, _ = epoch_batches(stock)
    np.testing.assert_array_equal(images, stock_images)
    np.testing.assert_array_equal(labels, stock_labels)


class FailingOp(Operation):
    """A pipeline op that raises on the second batch, as an op meeting bad data would."""

    def generate_code(self):
        def fail(images, dst):
            fail.calls += 1
            if fail.calls > 1:
                raise ValueError('bad data')
            return images
        fail.calls = 0
        return fail

    def declare_state_and_memory(self, previous_state):
        return previous_state, None


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_loading_thread_that_dies_is_an_error_not_a_hang(small_beton, python_pipelines):
    """FFCV's own iterator waited for ever on its queue (the eval loader, eval.py and the kNN
    monitor read it so)."""
    pipelines = {'image': [CenterCropRGBImageDecoder((24, 24), ratio=1.0), FailingOp(),
                           ToTensor()],
                 'label': [IntDecoder(), ToTensor()]}
    loader = KeptBuffersLoader(small_beton, batch_size=3, num_workers=1,
                               order=OrderOption.SEQUENTIAL, pipelines=pipelines,
                               batches_ahead=1)
    batches = iter(loader)
    with pytest.raises(RuntimeError, match='the FFCV loading thread stopped with an error'):
        for _ in range(len(loader)):
            next(batches)


def test_an_epoch_ended_by_a_later_one_says_so(small_beton, python_pipelines):
    loader = make(KeptBuffersLoader, small_beton)
    first = iter(loader)
    next(first)
    second = iter(loader)
    with pytest.raises(RuntimeError, match='ended by a later iteration of the same loader'):
        next(first)
    assert len(list(second)) == len(loader)
