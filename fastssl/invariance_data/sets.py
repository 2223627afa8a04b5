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


def text_lines(path, what):
    """The lines of the UTF-8 text file ``path``; a leading byte-order mark (Windows editors
    write one) is dropped. UserError naming the file (and line) when it is missing, unreadable
    or not UTF-8."""
    require_file(path, what)
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as err:
        raise UserError(f'{what}: cannot read {path}: {err.strerror}') from None
    try:
        return raw.decode('utf-8-sig').splitlines()
    except UnicodeDecodeError as err:
        data = err.object   # the bytes after the mark: err.start counts from there
        line = data.count(b'\n', 0, err.start) + 1
        raise UserError(f'{what}: {path} line {line} is not UTF-8 text (byte '
                        f'0x{data[err.start]:02x})') from None


def visible_entries(folder):
    """Sorted names in ``folder``, hidden ones (``.name``) left out; UserError if unreadable."""
    try:
        return sorted(n for n in os.listdir(folder) if not n.startswith('.'))
    except OSError as err:
        raise UserError(f'cannot read folder {folder}: {err.strerror}') from None
