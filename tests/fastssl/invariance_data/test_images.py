"""fastssl/invariance_data/images.py: the image loader against torchvision's crop + resize,
batches in order, a crop box that gives no image as one clear error."""
import re

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

from fastssl.invariance_data import read_dataset
from fastssl.invariance_data.images import image_batches, load_image
from fastssl_common.errors import UserError


def test_loader_matches_torchvision_crop_and_resize(got_root):
    data = read_dataset('got10k', str(got_root / 'train'))
    path, box = data.images.paths[1], data.images.boxes[1]
    x, y, w, h = box
    with Image.open(path) as image:
        reference = TF.resize(TF.crop(image.convert('RGB'), y, x, h, w), [128, 128])
    np.testing.assert_array_equal(load_image(path, 128, box), np.asarray(reference))
    batches = list(image_batches(data.images, range(len(data.images)), batch_size=4,
                                 workers=2))
    assert [tuple(b.shape) for b, _ in batches] == [(4, 128, 128, 3)] * 2 + \
        [(len(data.images) - 8, 128, 128, 3)]
    np.testing.assert_array_equal(batches[0][0][1].numpy(), np.asarray(reference))
    assert np.concatenate([r.numpy() for _, r in batches]).tolist() == \
        list(range(len(data.images)))


@pytest.mark.parametrize('box, problem', [
    ((4, 2, -3, 5), 'empty'),                       # a Pascal3D+ bbox with x2 < x1
    ((10.1, 2, 0.3, 5), 'empty'),                   # Pillow rounds it to no column at all
    ((4, 2, float('inf'), 5), 'not finite'),        # Pillow: OverflowError
    ((float('nan'), 2, 3, 5), 'not finite'),
    ((16, 2, 3, 5), 'entirely outside the image'),  # would be a black crop
    ((-3, -5, 2.4, 5), 'entirely outside the image'),
    ((0, 0, 1e6, 1e6), f'larger than {Image.MAX_IMAGE_PIXELS} pixels'),  # Pillow: bomb error
])
def test_a_crop_box_that_gives_no_image_is_one_line_error(tmp_path, box, problem):
    path = tmp_path / 'photo.png'
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    shown = ', '.join(f'{v:g}' for v in box)
    with pytest.raises(UserError, match=rf'crop box \(x, y, w, h\) = \({re.escape(shown)}\) '
                                        rf'is {problem} for image .*photo.png \(16 x 16\)'):
        load_image(str(path), 8, box=box)
    # partly outside the image is a crop (the rest black), as torchvision's
    assert load_image(str(path), 8, box=(-3, -5, 4, 6)).shape == (8, 8, 3)
