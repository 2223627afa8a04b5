"""Assemble the image demo's folders from real photographs shipped inside packages.

    python scripts/demo_images.py OUT [RECIPE.yaml]

No download: the photos come from scikit-image's ``skimage/data`` and scikit-learn's sample
images. Each photo is cut into a ``GRID`` x ``GRID`` grid of tiles: the tiles on the diagonal
are held out as the monitor's items (``scripts/demo_monitor.py``: their views, augmented as
RECIPE's training is (default ``configs/demo_cpu.yaml``), go to
``OUT/queries/<photo>/``), the others go to ``OUT/train/<photo>/``, which the run trains on
and the monitor's kNN bank holds.

The recipe and OUT are checked before anything is written; a bad one is one ``error:`` line,
exit status 2, and a run that fails leaves no folder it created behind.
"""
import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
from demo_monitor import recipe_augment, save_jpegs, write_queries
from PIL import Image

from fastssl_common.atomic import ensure_writable_dir
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, run_cli

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


def check_recipe(recipe):
    """Read the recipe's augmentation once, before anything is written (UserError if the
    recipe is missing or bad)."""
    recipe_augment(recipe)


@contextlib.contextmanager
def demo_output(out, parts=('train', 'queries')):
    """Check that the folder ``out`` can be written (UserError naming it) and create it; if
    the block fails, what it created (``out`` itself, or its ``parts`` that did not exist)
    is removed again. OSErrors in the block become a UserError naming ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f'output folder {out} is a file, not a folder')
    existed = out.exists()
    new_parts = [out / part for part in parts if not (out / part).exists()]
    top = out
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    ensure_writable_dir(str(out))
    try:
        try:
            yield out
        except OSError as err:
            raise UserError(f'cannot write into output folder {out}: '
                            f'{err.strerror or err}') from None
    except BaseException:
        for created in ([] if existed else [top]) or new_parts:
            if os.path.exists(created):
                shutil.rmtree(created, ignore_errors=True)
        raise


def parse(argv, description, default_out, default_recipe):
    parser = ArgParser(description=description)
    parser.add_argument('out', nargs='?', default=default_out, help='output folder')
    parser.add_argument('recipe', nargs='?', default=str(default_recipe),
                        help='training recipe (.yaml) whose augmentation the queries get')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv, __doc__.split('\n\n')[0], 'demo_out/images', RECIPE)
    check_recipe(args.recipe)
    count = trained = 0
    items = []
    with demo_output(args.out) as out:
        for path in package_photos():
            rgb = photo(path)
            if rgb is None:
                continue
            train, held_out = tiles(rgb)
            save_jpegs(out / 'train' / path.stem, train)
            items += [(path.stem, tile) for tile in held_out]
            count += 1
            trained += len(train)
        write_queries(out / 'queries', items, args.recipe)
    print(f'{count} photos from package data: {trained} training tiles -> {out}/train, '
          f'{len(items)} held-out tiles -> {out}/queries (augmented views, by photo)')
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
