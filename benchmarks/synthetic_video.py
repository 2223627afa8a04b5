"""Video material with known motion, made from real photos (scikit-image): a textured patch
moved over a real background with exact sub-pixel boxes, and GOT-10k style frame folders.

``benchmarks.tracking`` measures tracking accuracy on it; the writer and tracker tests use the
same material.
"""
import os

import cv2
import numpy as np
import skimage.data
from PIL import Image


def real_patch(name, crop, size):
    """A crop ``(x0, y0, x1, y1)`` of a scikit-image photo, RGB, resized to ``size`` (w, h)."""
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    x0, y0, x1, y1 = crop
    return cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1, :3]), size,
                      interpolation=cv2.INTER_AREA)


# name, crop: textured real objects (the cat's face, the astronaut's head, a rocket, coins)
PATCHES = {'cat': ('chelsea', (120, 20, 320, 220)), 'astronaut': ('astronaut', (150, 30, 300, 200)),
           'rocket': ('rocket', (200, 50, 400, 300)), 'coins': ('coins', (0, 0, 200, 150))}


FRAME_SIZE = (320, 240)     # (width, height) of the moving-patch sequences


def moving_patch_sequence(count, patch='cat', background='coffee', frame_size=FRAME_SIZE,
                          patch_size=(72, 72), start=(40.0, 60.0), velocity=(3.0, 1.5),
                          scale_rate=1.0, pan=(0.0, 0.0), occluder=None, vanish_at=None):
    """Frames of a real textured patch moving over a real background, and its true boxes.

    The patch (``PATCHES[patch]`` at ``patch_size``) has its top-left corner at ``start +
    i * velocity`` and is scaled by ``scale_rate ** i`` in frame ``i`` (sub-pixel warps,
    bilinear); the background photo pans by ``pan`` px per frame. ``occluder``: ``(x0, y0,
    x1, y1)`` of a static grey-level ``brick`` texture drawn over everything (partial
    occlusion when the patch passes under it). From frame ``vanish_at`` on the patch is not
    drawn (a disappearance). Returns ``(frames, boxes)``: RGB uint8 frames and an ``count x
    4`` array of true ``x0, y0, x1, y1`` boxes (frames after ``vanish_at`` keep the box
    where the patch would have been).
    """
    width, height = frame_size
    name, crop = PATCHES[patch]
    texture = real_patch(name, crop, patch_size)
    photo = getattr(skimage.data, background)()
    margin = int(np.ceil(np.abs(pan).max() * count)) + 2
    backdrop = cv2.resize(photo, (width + 2 * margin, height + 2 * margin),
                          interpolation=cv2.INTER_AREA)
    cover = None if occluder is None else real_patch(
        'brick', (0, 0, 256, 256), (occluder[2] - occluder[0], occluder[3] - occluder[1]))
    frames, boxes = [], np.zeros((count, 4))
    ones = np.ones(texture.shape[:2], np.float32)
    for i in range(count):
        move = np.float32([[1, 0, -margin + pan[0] * i], [0, 1, -margin + pan[1] * i]])
        frame = cv2.warpAffine(backdrop, move, (width, height), flags=cv2.INTER_LINEAR)
        scale = scale_rate ** i
        x, y = start[0] + velocity[0] * i, start[1] + velocity[1] * i
        boxes[i] = (x, y, x + scale * patch_size[0], y + scale * patch_size[1])
        if vanish_at is None or i < vanish_at:
            place = np.float32([[scale, 0, x], [0, scale, y]])
            # pixel centres: a texture pixel u covers [u, u+1); shift by half a pixel each way
            place[:, 2] += 0.5 * scale - 0.5
            warped = cv2.warpAffine(texture, place, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(ones, place, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            frame = (frame * (1 - alpha) + warped * alpha).round().astype(np.uint8)
        if cover is not None:
            x0, y0, x1, y1 = occluder
            frame[y0:y1, x0:x1] = cover
        frames.append(np.ascontiguousarray(frame))
    return frames, boxes


def write_sequence(folder, frames, first_number=1, digits=8, skip=(), boxes=True):
    """A GOT-10k style folder: ``00000001.jpg``… (numbers in ``skip`` left out) and
    ``groundtruth.txt`` with one ``x,y,w,h`` line per frame number."""
    os.makedirs(folder, exist_ok=True)
    for i, rgb in enumerate(frames):
        number = first_number + i
        if number not in skip:
            Image.fromarray(rgb).save(os.path.join(folder, f'{number:0{digits}d}.jpg'),
                                      quality=95)
    if boxes:
        with open(os.path.join(folder, 'groundtruth.txt'), 'w') as handle:
            for i in range(len(frames)):
                handle.write(f'{10 + i},{5 + i / 2:.1f},30,20\n')
    return str(folder)
