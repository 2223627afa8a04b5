"""fastssl/training_parts.py: the note for images smaller than the views made of them."""
import numpy as np
from ffcv.reader import Reader

from fastssl.training_parts import upscaling_note
from fastssl_common.formats import IMAGE


def test_images_smaller_than_the_resolution_get_a_note(small_beton):
    reader = Reader(small_beton)
    stored = reader.metadata[f'f{list(reader.handlers).index(IMAGE)}']
    side = int(np.median(np.minimum(stored['height'], stored['width'])))
    assert 32 < side <= 96                      # written at max_resolution 96
    assert upscaling_note(reader, IMAGE, small_beton, 224) == (
        f'the images of {small_beton} are smaller than data.resolution=224 px (median shorter '
        f'side {side} px): every view is upscaled; a data.resolution near {side} trains faster '
        f'on the same detail')
    assert upscaling_note(reader, IMAGE, small_beton, side) is None
    assert upscaling_note(reader, IMAGE, small_beton, 32) is None
