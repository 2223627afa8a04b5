"""loaders/centre_crop_decoder.py, through the evaluation loader: intact images give stock
FFCV's ``CenterCropRGBImageDecoder`` pixels bit for bit; a JPEG damaged after writing comes
out black (stock shows the image its decode buffer held before) and is counted."""
import numpy as np
import pytest
from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.reader import Reader
from ffcv.transforms import ToTensor

from loaders.eval_loader import make_eval_loader
from tests.conftest import DAMAGED_SAMPLE as DAMAGED


def views(loader):
    """One epoch of (images, labels), copied out of the loader's buffers."""
    images, labels = [], []
    for batch_images, batch_labels in loader:
        images.append(batch_images.numpy().copy())
        labels.append(batch_labels.numpy().ravel().copy())
    return np.concatenate(images), np.concatenate(labels)


def stock_views(path, resolution, batch_size, num_workers):
    """The same epoch through stock FFCV's centre crop: the reference."""
    pipelines = {name: None for name in Reader(path).handlers}
    pipelines.update(image=[CenterCropRGBImageDecoder((resolution, resolution), ratio=224 / 256),
                            ToTensor()],
                     label=[IntDecoder(), ToTensor()])
    return views(Loader(path, batch_size=batch_size, num_workers=num_workers,
                        order=OrderOption.SEQUENTIAL, drop_last=False, pipelines=pipelines))


# an area downscale and an upscale of the JPEGs; raw images pass through to the same resize
@pytest.mark.parametrize('stored, resolution', [('jpg', 40), ('jpg', 112), ('raw', 40)])
def test_intact_images_are_stock_ffcvs_bit_for_bit(stored, resolution, small_beton,
                                                   small_raw_beton):
    path = small_beton if stored == 'jpg' else small_raw_beton[0]
    loader = make_eval_loader(path, batch_size=5, resolution=resolution, num_workers=2)
    images, labels = views(loader)
    expected_images, expected_labels = stock_views(path, resolution, 5, 2)
    assert images.shape == (16, resolution, resolution, 3)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert (loader.decode_failures.count, loader.decode_failures.lowest_sample) == (0, None)


def test_a_damaged_image_is_black_and_counted_every_epoch(small_beton, damaged_beton):
    intact, _ = stock_views(small_beton, 40, 4, 2)
    loader = make_eval_loader(damaged_beton, batch_size=4, resolution=40, num_workers=2)
    for epoch in (1, 2):
        images, _ = views(loader)
        assert not images[DAMAGED].any()
        others = np.arange(16) != DAMAGED
        np.testing.assert_array_equal(images[others], intact[others])
        assert (loader.decode_failures.count, loader.decode_failures.lowest_sample) == \
            (epoch, DAMAGED)


def test_images_one_pixel_high_or_wide_are_cropped_to_one_pixel(tmp_path):
    """Stock's centre crop of a 1 px side is 0 px, and OpenCV's resize of it aborted the
    process (kNN and the linear probe ended with a C++ 'terminate called', exit status 134)."""
    from PIL import Image

    from writers.write_images import write_images

    colours = {'dot.png': (1, 1), 'row.png': (7, 1), 'column.png': (1, 7), 'square.png': (9, 9)}
    for name, size in colours.items():
        (tmp_path / 'src' / name[:-4]).mkdir(parents=True)
        Image.new('RGB', size, (200, 30, 90)).save(tmp_path / 'src' / name[:-4] / name)
    out = str(tmp_path / 'odd.beton')
    write_images(str(tmp_path / 'src'), out, write_mode='raw', workers=1, progress=False)
    images, _ = views(make_eval_loader(out, batch_size=4, resolution=16, num_workers=1))
    assert images.shape == (4, 16, 16, 3)
    assert (images == np.array([200, 30, 90], np.uint8)).all()
