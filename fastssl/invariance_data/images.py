"""Decoding the images of an :class:`ImageList` as the protocols do: Pillow decode to RGB,
crop to the box (Pillow's crop, as torchvision's ``F.crop`` on a PIL image: coordinates
rounded, outside the image black), resize to size x size with Pillow's bilinear filter (what
torchvision's ``Resize`` does to a PIL image). ImageNet normalisation happens on the batch
(``fastssl.normalize``, inside ``fastssl.knn.extract_features``).
"""
import collections
import concurrent.futures
import contextlib
import math
import os

import numpy as np
import torch
from PIL import Image

from fastssl_common.errors import UserError
from fastssl_common.images import check_regular_file, describe_failure, load_rgb


def load_image(path, size, box=None):
    """-> uint8 (size, size, 3) RGB; UserError naming an unreadable file or a box that
    :func:`crop_problem` refuses (Pillow would fail deep in a worker thread, or crop black)."""
    with _readable(path):
        image = Image.fromarray(load_rgb(path))
    if box is not None:
        x, y, w, h = (float(v) for v in box)
        problem = crop_problem(box, image.width, image.height)
        if problem:
            raise UserError(f'crop box (x, y, w, h) = ({x:g}, {y:g}, {w:g}, {h:g}) is {problem} '
                            f'for image {path} ({image.width} x {image.height})')
        image = image.crop((x, y, x + w, y + h))
    return np.asarray(image.resize((size, size), Image.BILINEAR))


def image_size(path):
    """(width, height) of the image file ``path``, from its header alone."""
    with _readable(path):
        check_regular_file(path)   # opening a pipe would wait for ever
        with Image.open(path) as image:
            return image.size


@contextlib.contextmanager
def _readable(path):
    try:
        yield
    except Exception as err:  # Pillow raises many types for a bad file
        raise UserError(f'cannot read image {path} ({describe_failure(err)})') from None


def crop_problem(box, width, height):
    """Why the crop ``box`` = (x, y, w, h) of a width x height image gives no image of it, or
    None. Pillow rounds the corners to whole pixels and fills what lies outside the image with
    black: a box that rounds to nothing, or overlaps no pixel, would be a blank image, and one
    of more pixels than Pillow allocates is mostly black anyway."""
    x, y, w, h = (float(v) for v in box)
    corners = (x, y, x + w, y + h)
    if not all(math.isfinite(v) for v in corners):
        return 'not finite'
    x0, y0, x1, y1 = (round(v) for v in corners)
    if x1 <= x0 or y1 <= y0:
        return 'empty'
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return 'entirely outside the image'
    if (x1 - x0) * (y1 - y0) > Image.MAX_IMAGE_PIXELS:
        # Pillow would refuse the crop as a decompression bomb, deep in a worker thread
        return f'larger than {Image.MAX_IMAGE_PIXELS} pixels'
    return None


def image_batches(images, rows, batch_size, size=None, workers=None):
    """Yield (uint8 (B, size, size, 3) tensor, int64 (B,) row indices) for ``rows`` of the
    ImageList ``images``, decoding on a thread pool (Pillow releases the GIL) with at most two
    batches in flight, so memory stays bounded whatever the dataset size."""
    size = size or images.size
    pending = collections.deque()
    todo = iter(rows)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        def top_up():
            for row in todo:
                box = None if images.boxes is None else images.boxes[row]
                pending.append((row, pool.submit(load_image, images.paths[row], size, box)))
                if len(pending) >= 2 * batch_size:
                    break
        top_up()
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            top_up()
            pixels = np.stack([future.result() for _, future in batch])
            yield torch.from_numpy(pixels), torch.tensor([row for row, _ in batch])
