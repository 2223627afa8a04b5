"""What a reader produces: the images to run through a backbone and the measurements on them."""
import dataclasses
import os

import numpy as np

from fastssl_common.errors import UserError


@dataclasses.dataclass
class ImageList:
    """``paths[i]`` is image i; ``boxes[i]`` = (x, y, w, h) crop in pixels, or ``boxes`` None
    for whole images; every image is resized to ``size`` x ``size`` (the protocol's size)."""
    paths: list
    size: int
    boxes: np.ndarray = None

    def __len__(self):
        return len(self.paths)


@dataclasses.dataclass
class Measurement:
    """One invariance score: over the images ``rows`` (indices into the ImageList), with a set
    id and a target per row. ``transformation``/``magnitude`` (in ``unit``) place a rendered
    curve's point."""
    name: str
    rows: np.ndarray
    set_ids: np.ndarray
    targets: np.ndarray
    transformation: str = ''
    magnitude: float = None
    unit: str = ''

    def __post_init__(self):
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.set_ids = np.asarray(self.set_ids)
        self.targets = np.asarray(self.targets)
        self.transformation = self.transformation or self.name


@dataclasses.dataclass
class InvarianceData:
    """A dataset as read: its name, root, images and measurements. ``rendered`` marks
    synthetic data (labelled "rendered data" wherever it is shown)."""
    dataset: str
    root: str
    images: ImageList
    measurements: list
    rendered: bool = False

    def check(self):
        """Fail before any feature extraction: every measurement must be scorable."""
        from fastssl.invariance import check_sets
        for m in self.measurements:
            try:
                check_sets(m.set_ids, m.targets)
            except UserError as err:
                raise UserError(f'{self.dataset} {m.name} ({self.root}): {err}') from None
        return self


def require_dir(path, what):
    if not os.path.isdir(path):
        raise UserError(f'{what}: expected the folder {path}')
    return path


def require_file(path, what):
    if not os.path.isfile(path):
        raise UserError(f'{what}: expected the file {path}')
    return path


def visible_entries(folder):
    """Sorted names in ``folder``, hidden ones (``.name``) left out; UserError if unreadable."""
    try:
        return sorted(n for n in os.listdir(folder) if not n.startswith('.'))
    except OSError as err:
        raise UserError(f'cannot read folder {folder}: {err.strerror}') from None
