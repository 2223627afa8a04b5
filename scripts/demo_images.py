"""Assemble the demo's image folders from real photographs shipped inside packages.

No download: the photos come from scikit-image's ``skimage/data`` and scikit-learn's sample
images. Each photo becomes a class; its full frame and three quadrants go to ``train/``, the
fourth quadrant to ``val/``, so the kNN monitor asks a meaningful (if small) question: does
an unseen part of a photo land next to the other parts of the same photo?
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MIN_SIDE = 128


def package_photos():
    import skimage
    import sklearn.datasets
    folders = [Path(skimage.__file__).parent / 'data',
               Path(sklearn.datasets.__file__).parent / 'images']
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in ('.png', '.jpg', '.jpeg'):
                yield path


def main(out_dir):
    out = Path(out_dir)
    count = 0
    for path in package_photos():
        try:
            image = Image.open(path)
            image.load()
        except OSError:
            continue
        if image.mode not in ('RGB', 'RGBA', 'L') or min(image.size) < MIN_SIDE:
            continue  # skip masks, tiny icons and 16-bit scientific images
        rgb = np.asarray(image.convert('RGB'))
        if rgb.std() < 10:
            continue
        h, w = rgb.shape[:2]
        quads = [rgb[:h // 2, :w // 2], rgb[:h // 2, w // 2:], rgb[h // 2:, :w // 2],
                 rgb[h // 2:, w // 2:]]
        name = path.stem
        for split, items in (('train', [('full', rgb)] + [(f'q{i}', q) for i, q in
                                                         enumerate(quads[:3])]),
                             ('val', [('q3', quads[3])])):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for tag, pixels in items:
                Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f'{tag}.png')
        count += 1
    print(f'{count} photos from package data -> {out}/train, {out}/val')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'demo_out/images')
