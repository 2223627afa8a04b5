"""Assemble the image demo's folders from real photographs shipped inside packages.

    python scripts/demo_images.py OUT [RECIPE.yaml]

No download: the photos come from scikit-image's ``skimage/data`` and scikit-learn's sample
images. Each photo is cut into a ``GRID`` x ``GRID`` grid of tiles: the tiles on the diagonal
are held out as the monitor's items (``scripts/demo_monitor.py``: their views, augmented as
RECIPE's training is (default ``configs/demo_cpu.yaml``), go to
``OUT/queries/<photo>/``), the others go to ``OUT/train/<photo>/``, which the run trains on
and the monitor's kNN bank holds.
"""
import sys
from pathlib import Path

import numpy as np
from demo_monitor import save_jpegs, write_queries
from PIL import Image

GRID = 5
MIN_SIDE = 160     # px: tiles of at least 32 px
RECIPE = Path(__file__).parent.parent / 'configs' / 'demo_cpu.yaml'  # the queries' augmentation
# Drawings and near-copies of another photo (the right half of a stereo pair) are no classes.
NOT_PHOTOS = {'chessboard_GRAY', 'chessboard_RGB', 'color', 'logo', 'phantom', 'horse',
              'motorcycle_right'}


def package_photos():
    import skimage
    import sklearn.datasets
    folders = [Path(skimage.__file__).parent / 'data',
               Path(sklearn.datasets.__file__).parent / 'images']
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in ('.png', '.jpg', '.jpeg') and path.stem not in NOT_PHOTOS:
                yield path


def photo(path):
    """RGB array of a usable photograph, or None (masks, icons, 16-bit scientific images)."""
    try:
        image = Image.open(path)
        image.load()
    except OSError:
        return None
    if image.mode not in ('RGB', 'RGBA', 'L') or min(image.size) < MIN_SIDE:
        return None
    rgb = np.asarray(image.convert('RGB'))
    return rgb if rgb.std() >= 10 else None


def tiles(rgb):
    """-> (training tiles, held-out tiles): the diagonal of a GRID x GRID grid is held out."""
    h, w = rgb.shape[0] // GRID, rgb.shape[1] // GRID
    train, held_out = [], []
    for row in range(GRID):
        for col in range(GRID):
            tile = rgb[row * h:(row + 1) * h, col * w:(col + 1) * w]
            (held_out if row == col else train).append(tile)
    return train, held_out


def main(out_dir, recipe):
    out = Path(out_dir)
    count = trained = 0
    items = []
    for path in package_photos():
        rgb = photo(path)
        if rgb is None:
            continue
        train, held_out = tiles(rgb)
        save_jpegs(out / 'train' / path.stem, train)
        items += [(path.stem, tile) for tile in held_out]
        count += 1
        trained += len(train)
    write_queries(out / 'queries', items, recipe)
    print(f'{count} photos from package data: {trained} training tiles -> {out}/train, '
          f'{len(items)} held-out tiles -> {out}/queries (augmented views, by photo)')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'demo_out/images',
         sys.argv[2] if len(sys.argv) > 2 else RECIPE)
