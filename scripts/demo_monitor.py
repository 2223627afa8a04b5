"""The demos' held-out monitor: can the network tell which shot (or photo) an image it never
trained on comes from, once that image is cropped and recoloured?

The kNN bank is the training set itself, labelled by source (``train/<shot>/``,
``train/<photo>/``: write_images reads the folders as classes). The queries are ``VIEWS``
views of each held-out item (a moment of a shot after the part the run trains on, a tile of a
photo that is left out of training) drawn with the MoCo v2 augmentation (random resized crop,
colour jitter, grayscale, flip) and filed under the item's source (``queries/<source>/``),
drawn once under a fixed seed, so every evaluation of a run, and every run, asks the same
questions. A query is right when the kNN vote of its nearest training images names its
source: chance is one in the number of sources.

An untrained network votes by colour and layout; the augmentation takes much of that away.
Training asks for exactly these invariances on the other images of the same sources, and the
monitor shows whether they carry over to images the run never saw. (Each held-out item being
its own class asks for something else: telling apart neighbouring moments of one shot or
neighbouring tiles of one photo, which invariant features do not do.)
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


def write_queries(folder, items):
    """``items``: (source, RGB array) pairs -> ``folder/<source>/`` holds ``VIEWS`` views of
    each of that source's items (a class folder for writers/write_images.py)."""
    torch.manual_seed(SEED)
    views = {}
    for source, image in items:
        views.setdefault(source, []).extend(query_views(image))
    for source, source_views in views.items():
        save_jpegs(folder / source, source_views)


def save_jpegs(folder, images, quality=95):
    """Numbered JPEGs (00000.jpg ...): a class folder for write_images, a frame folder for
    the video writers."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, rgb in enumerate(images):
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / f'{number:05d}.jpg',
                                                        quality=quality)
