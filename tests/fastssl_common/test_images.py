"""The one image decode every side uses: every Pillow mode to 8-bit RGB, transparency onto
white, and one-line reasons for files that do not decode."""
import numpy as np
import pytest
import skimage.data
from PIL import Image

from fastssl_common.images import (
    NonFinitePixels,
    describe_failure,
    is_image_name,
    load_rgb,
    to_rgb,
)


def test_to_rgb_converts_every_mode():
    rgb = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((8, 6), Image.BILINEAR))
    palette = Image.fromarray(rgb).convert('P')
    palette.info['transparency'] = int(np.asarray(palette)[0, 0])
    cmyk = Image.fromarray(rgb).convert('CMYK')
    sixteen = Image.fromarray((np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000))
    for image in (palette, cmyk, sixteen, Image.fromarray(rgb).convert('1')):
        out = to_rgb(image)
        assert out.shape == (6, 8, 3) and out.dtype == np.uint8, image.mode
    assert tuple(to_rgb(palette)[0, 0]) == (255, 255, 255)        # transparent -> white
    assert to_rgb(sixteen)[5, 7, 0] == round(47000 / 257)          # 16-bit scaled to 8-bit


def test_load_rgb_reads_the_file_and_names_failures(tmp_path):
    rgb = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((8, 6), Image.BILINEAR))
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    np.testing.assert_array_equal(load_rgb(str(tmp_path / 'a.png')), rgb)
    assert is_image_name('x/A.PNG') and not is_image_name('notes.txt')
    (tmp_path / 'b.jpg').write_text('not an image')
    (tmp_path / 'empty.jpg').write_bytes(b'')     # it was 'not a recognised image file'
    for name, reason in (('missing.png', 'file not found'), ('b.jpg', 'not a recognised image'),
                         ('empty.jpg', 'empty file (0 bytes)')):
        with pytest.raises(Exception) as err:
            load_rgb(str(tmp_path / name))
        assert describe_failure(err.value).startswith(reason)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_a_float_image_with_a_non_finite_pixel_is_refused(bad):
    """One NaN made a 0..1 image's maximum NaN, so it was not scaled and came out almost
    black; an infinity did the same. Refused with a reason, as an unreadable file is."""
    values = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(values, mode='F'))[..., 0],
                                  np.rint(values * 255))
    values[2, 3] = bad
    with pytest.raises(NonFinitePixels) as err:
        to_rgb(Image.fromarray(values, mode='F'))
    assert describe_failure(err.value) == '1 of 48 float pixels are NaN or infinite'


def test_an_image_over_pillows_pixel_limit_is_named_as_too_large(tmp_path, monkeypatch):
    """The skip list showed Pillow's 'DecompressionBombError: ... could be decompression bomb
    DOS attack.' for a 196-megapixel scan. The limit is lowered here so that a small image
    passes it (Pillow refuses twice its MAX_IMAGE_PIXELS)."""
    Image.new('L', (100, 30), 128).save(tmp_path / 'scan.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    with pytest.raises(Image.DecompressionBombError) as err:
        load_rgb(str(tmp_path / 'scan.png'))
    assert describe_failure(err.value) == (
        'too large to decode (0.003 megapixels, over the 0.002 megapixels Pillow allows against '
        'decompression bombs): downscale it first')
