"""The demos' held-out monitor: can the network tell which shot (or photo) an image it never
trained on comes from, once that image is cropped and recoloured?

The kNN bank is the training set itself, labelled by source (``train/<shot>/``,
``train/<photo>/``: write_images reads the folders as classes). The queries are ``VIEWS``
views of each held-out item (a moment of a shot after the part the run trains on, a tile of a
photo that is left out of training), drawn with the augmentation of the demo's training recipe
(its ``augment`` section: random resized crop, colour jitter, grayscale, blur, flip) and filed
under the item's source (``queries/<source>/``), drawn once under a fixed seed, so every
evaluation of a run, and every run, asks the same questions. A query is right when the kNN
vote of its nearest training images names its source: chance is one in the number of sources.

An untrained network votes by colour and layout; the augmentation takes part of that away.
Training asks for exactly these invariances on the other images of the same sources, and the
monitor shows whether they carry over to images the run never saw. (Views stronger than the
training's ask for invariances the run was never taught: the monitor then measures the recipe
gap more than the learning. Each held-out item being its own class asks for something else:
telling apart neighbouring moments of one shot or neighbouring tiles of one photo, which
invariant features do not do.)
"""
import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from fastssl.config import load_settings
from loaders.photometric_params import blur_kernel_size

VIEWS = 4          # query views per held-out item
SIDE = 128         # px of a query view; the kNN loader centre-crops and resizes like the bank
SEED = 0


def recipe_augment(recipe):
    """The ``augment`` section of a training recipe (.yaml), defaults filled in."""
    # data.path is required to train, not to read the augmentation
    return load_settings(['--config-file', str(recipe), '--data.path=unused']).augment


def query_views(image, augment, views=VIEWS, side=SIDE):
    """``views`` RGB arrays of one image, augmented as the settings ``augment`` say (the global
    torch generator draws them, as torchvision's v1 transforms do)."""
    a = augment
    blur = T.GaussianBlur(blur_kernel_size(side, side), sigma=(a.sigma_min, a.sigma_max))
    transform = T.Compose([
        T.RandomResizedCrop(side, scale=(a.crop_scale_min, a.crop_scale_max),
                            ratio=(a.crop_ratio_min, a.crop_ratio_max)),
        T.RandomApply([T.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue)],
                      p=a.p_jitter),
        T.RandomGrayscale(p=a.p_gray),
        T.RandomApply([blur], p=a.p_blur),
        T.RandomHorizontalFlip(p=a.flip_prob)])
    return [np.asarray(transform(Image.fromarray(image))) for _ in range(views)]


def write_queries(folder, items, recipe):
    """``items``: (source, RGB array) pairs -> ``folder/<source>/`` holds ``VIEWS`` views of
    each of that source's items (a class folder for writers/write_images.py), augmented as the
    training recipe ``recipe`` (.yaml) augments."""
    augment = recipe_augment(recipe)
    torch.manual_seed(SEED)
    views = {}
    for source, image in items:
        views.setdefault(source, []).extend(query_views(image, augment))
    for source, source_views in views.items():
        save_jpegs(folder / source, source_views)


def save_jpegs(folder, images, quality=95):
    """Numbered JPEGs (00000.jpg ...): a class folder for write_images, a frame folder for
    the video writers."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, rgb in enumerate(images):
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / f'{number:05d}.jpg',
                                                        quality=quality)
