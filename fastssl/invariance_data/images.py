"""Decoding the images of an :class:`ImageList` as the protocols do: Pillow decode to RGB,
crop to the box (Pillow's crop, as torchvision's ``F.crop`` on a PIL image: coordinates
rounded, outside the image black), resize to size x size with Pillow's bilinear filter (what
torchvision's ``Resize`` does to a PIL image). ImageNet normalisation happens on the batch
(``fastssl.normalize``, inside ``fastssl.knn.extract_features``).
"""
import collections
import concurrent.futures
import os

import numpy as np
import torch
from PIL import Image

from fastssl_common.errors import UserError
from fastssl_common.images import describe_failure, load_rgb


def load_image(path, size, box=None):
    """-> uint8 (size, size, 3) RGB; UserError naming an unreadable file."""
    try:
        image = Image.fromarray(load_rgb(path))
    except Exception as err:  # Pillow raises many types for a bad file
        raise UserError(f'cannot read image {path} ({describe_failure(err)})') from None
    if box is not None:
        x, y, w, h = (float(v) for v in box)
        if not (w > 0 and h > 0):  # Pillow would fail deep in a worker thread
            raise UserError(f'empty crop box (x, y, w, h) = ({x:g}, {y:g}, {w:g}, {h:g}) '
                            f'for image {path}')
        image = image.crop((x, y, x + w, y + h))
    return np.asarray(image.resize((size, size), Image.BILINEAR))


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
