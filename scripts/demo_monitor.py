"""The demos' held-out monitor: can the network still recognise an image it never trained on
once that image is cropped and recoloured?

Each held-out item (a moment of a shot after the part the run trains on, a tile of a photo
that is left out of training) is its own class. The kNN bank holds the item as it is
(``bank/<item>/``); the queries are ``VIEWS`` views of it drawn with the MoCo v2 augmentation
(random resized crop, colour jitter, grayscale, flip; ``queries/<item>/``), drawn once under
a fixed seed, so every evaluation of a run, and every run, asks the same questions. A query
is right when its nearest bank image is its own item: chance is one in the number of items.
An untrained network matches by colour and layout and gets a minority right; training asks
for exactly these invariances, and the monitor shows whether they carry over to unseen
images.
"""
import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

VIEWS = 4          # query views per held-out item
SIDE = 128         # px of a query view; the kNN loader centre-crops and resizes like the bank
SEED = 0


def query_views(image, views=VIEWS, side=SIDE):
    """``views`` augmented RGB arrays of one image (the global torch generator draws them,
    as torchvision's v1 transforms do)."""
    augment = T.Compose([
        T.RandomResizedCrop(side, scale=(0.2, 1.0)),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomHorizontalFlip()])
    return [np.asarray(augment(Image.fromarray(image))) for _ in range(views)]


def write_monitor(folder, items):
    """``items``: (name, RGB array) pairs -> ``folder/bank/<name>/`` and
    ``folder/queries/<name>/`` (class folders for writers/write_images.py)."""
    torch.manual_seed(SEED)
    for name, image in items:
        save_jpegs(folder / 'bank' / name, [image])
        save_jpegs(folder / 'queries' / name, query_views(image))


def save_jpegs(folder, images, quality=95):
    """Numbered JPEGs (00000.jpg ...): a class folder for write_images, a frame folder for
    the video writers."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, rgb in enumerate(images):
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / f'{number:05d}.jpg',
                                                        quality=quality)
