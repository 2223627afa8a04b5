"""loaders/eval_loader.py: every sample once, in file order, with its label; each view the
centre 224/256 of the short side resized to the output size (checked on exact pixels against
OpenCV's area resize of the source photo); a file without an image field is refused by name."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader


def samples(beton):
    """The sidecar's [(source path, label)] in file order."""
    with open(beton + '.json') as handle:
        return [(s['source'], int(s['label'])) for s in json.load(handle)['samples']]


def centre_view(path, resolution):
    """FFCV's centre crop (side int(224/256 * short side), floor-centred) + area resize."""
    rgb = np.asarray(Image.open(path).convert('RGB'))
    height, width = rgb.shape[:2]
    side = int(224 / 256 * min(height, width))
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(rgb[top:top + side, left:left + side], (resolution, resolution),
                      interpolation=cv2.INTER_AREA)


def test_every_sample_in_file_order_with_its_label_and_centre_view(small_raw_beton):
    beton, _ = small_raw_beton
    expected = samples(beton)
    images, labels = [], []
    for batch_images, batch_labels in make_eval_loader(beton, batch_size=5, resolution=40):
        images.append(np.asarray(batch_images))
        assert images[-1].dtype == np.uint8
        labels.append(np.asarray(batch_labels).ravel())
    # 16 samples in batches of 5: the last, partial batch is kept
    assert [len(x) for x in labels] == [5, 5, 5, 1]
    assert np.concatenate(labels).tolist() == [label for _, label in expected]
    views = np.concatenate(images)
    assert views.shape == (len(expected), 40, 40, 3)
    for view, (path, _) in zip(views, expected):
        np.testing.assert_array_equal(view, centre_view(path, 40), err_msg=path)


def test_refuses_a_beton_without_an_image_field(video_betons):
    _, pairs = video_betons
    with pytest.raises(UserError, match=r"pairs\.beton has no 'image' field \(fields: "
                                        r"\['frame_a', 'frame_b'"):
        make_eval_loader(pairs, batch_size=4, resolution=32)
