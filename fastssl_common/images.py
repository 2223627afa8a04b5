"""Decoding an image file to RGB the one way every side does, and which files are images.

:func:`load_rgb` fully decodes a file with Pillow and converts it to an ``H x W x 3`` ``uint8``
RGB array: transparent images are composited onto white; grayscale, palette, CMYK and 16-bit
images are converted to 8-bit RGB. The writers store images decoded so, and the invariance
measurements (``fastssl.invariance_data``) read their image sets so.
"""
import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
_WHITE = (255, 255, 255, 255)


def is_image_name(path):
    """True when the file name has one of the supported image extensions (any case)."""
    return path.lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(image):
    """Convert a loaded Pillow image of any mode to an ``H x W x 3`` uint8 RGB array.

    Transparency (alpha channel or a palette/colour-key transparency) is composited onto white,
    so transparent areas come out white rather than whatever colour they happen to store.
    16-bit and 32-bit integer images are scaled from 0..65535; float images from 0..1 (when
    their maximum is at most 1) or clipped to 0..255; a float image with a NaN or infinite
    pixel raises :class:`NonFinitePixels`. Only the first frame of multi-frame files
    is used. EXIF orientation is not applied (pixels stay as stored, like torchvision's loader).
    """
    mode = image.mode
    if mode == 'RGB':
        return np.asarray(image, dtype=np.uint8)
    if mode.startswith('I') or mode == 'F':
        values = np.asarray(image, dtype=np.float64)
        if mode == 'F':
            # one NaN would make max() NaN and leave a 0..1 image unscaled, almost black
            bad = np.count_nonzero(~np.isfinite(values))
            if bad:
                raise NonFinitePixels(f'{bad} of {values.size} float pixels are NaN or '
                                      f'infinite')
            values = values * 255.0 if values.size and values.max() <= 1.0 else values
        else:
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.has_transparency_data:
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, _WHITE)
        return np.asarray(Image.alpha_composite(background, rgba).convert('RGB'), dtype=np.uint8)
    return np.asarray(image.convert('RGB'), dtype=np.uint8)


def load_rgb(path):
    """Fully decode the image file at ``path`` to an ``H x W x 3`` uint8 RGB array.

    Raises whatever Pillow raises for a missing, unreadable, truncated or corrupt file.
    Pillow's warnings (bad EXIF, palette transparency, large images) are silenced.
    """
    rgb, _ = load_rgb_with_mode(path)
    return rgb


class NonFinitePixels(ValueError):
    """A float image with NaN or infinite pixels: no 8-bit value stands for them."""


class NotARegularFile(OSError):
    """A pipe, socket or device where an image file was expected: opening a pipe would wait
    for a writer for ever."""


class EmptyImageFile(OSError):
    """An image file of 0 bytes (a copy or download that did not finish)."""


def check_regular_file(path):
    """Raise :class:`NotARegularFile` for a path that exists and is not a regular file (links
    followed); a missing path is left to the open that follows."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise NotARegularFile(f'{path} is not a regular file')


def load_rgb_with_mode(path):
    """Like :func:`load_rgb`, and also return the file's original Pillow mode (e.g. ``"L"``)."""
    check_regular_file(path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise EmptyImageFile(f'{path} is empty')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with Image.open(path) as image:
            image.load()
            rgb = np.ascontiguousarray(to_rgb(image))
            return rgb, image.mode


def describe_failure(err):
    """A one-line reason for a failed decode, for the skip list and error messages."""
    if isinstance(err, FileNotFoundError):
        return 'file not found'
    if isinstance(err, NotARegularFile):
        return 'not a regular file (a pipe, socket or device)'
    if isinstance(err, EmptyImageFile):
        return 'empty file (0 bytes)'
    if isinstance(err, IsADirectoryError):
        return 'is a folder, not an image'
    if isinstance(err, PermissionError):
        return 'permission denied'
    if isinstance(err, UnidentifiedImageError):
        return 'not a recognised image file'
    if isinstance(err, NonFinitePixels):
        return str(err)
    if isinstance(err, Image.DecompressionBombError):
        pixels = re.search(r'\((\d+) pixels\)', str(err))
        size = f'{int(pixels.group(1)) / 1e6:.3g} megapixels, ' if pixels else ''
        return (f'too large to decode ({size}over the {2 * Image.MAX_IMAGE_PIXELS / 1e6:.3g} '
                f'megapixels Pillow allows against decompression bombs): downscale it first')
    text = ' '.join(str(err).split()) or type(err).__name__
    return f'{type(err).__name__}: {text}'
