"""Where the image writer's samples come from: image discovery, labels, boxes, decode checks.

Three ways to name the images:

* a folder, searched recursively for image files (sorted, so the order is reproducible;
  hidden entries and archive debris such as ``__MACOSX/`` skipped); an ImageFolder layout
  (``SRC/<class>/<image>``, or deeper inside the class folder) gives each image its class
  index as label, and a class folder without a supported image is refused; files of other
  extensions are counted;
* a text list file (UTF-8, a byte-order mark allowed): one path per line, optionally followed
  by an integer label (64-bit, as FFCV stores it);
* a COCO-style boxes file (``--boxes``): one sample per annotated box, cropped with a margin.

Every image is decoded the same way, by :func:`fastssl_common.images.load_rgb`;
:func:`map_in_order` runs the writer's reading over a process pool.
"""
import concurrent.futures
import itertools
import json
import math
import os
import re
import sys
import unicodedata
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastssl_common.errors import (
    UserError,
    end_quietly_on_stop_signals,
    end_with_parent,
    one_line,
    require_file,
)
from fastssl_common.images import (
    IMAGE_EXTENSIONS,
    is_image_name,
)
from fastssl_common.numbers import check_number

UNLABELED = -1
_NOTED = 5                  # names a note lists before "and N more"
CHUNKS_AHEAD = 4            # chunks handed out per reading process before results are read


@dataclass
class Sample:
    """One sample to write: the whole image at ``path``, or the ``crop`` of it around ``box``."""
    path: str
    label: int = UNLABELED
    box: list = None      # the annotated [x, y, w, h] (COCO), or None for a whole image
    crop: tuple = None    # (x, y, w, h) in whole pixels that is actually stored, or None


@dataclass
class SampleList:
    """The samples of a source plus its class names (empty when the source has none).

    A folder source also counts the files it left out for their extension (``ignored``:
    {extension: count}) and names the images that lie in it beside class folders whose
    images would otherwise make an ImageFolder layout (``loose``: they make it unlabelled).
    """
    samples: list
    classes: list = field(default_factory=list)
    ignored: dict = field(default_factory=dict)
    loose: list = field(default_factory=list)

    @property
    def paths(self):
        """The distinct image files, in first-use order (each is decoded once to check it)."""
        return list(dict.fromkeys(s.path for s in self.samples))


# ---------------------------------------------------------------------------- finding images

def find_images(src):
    """Samples for SRC, a folder (recursive scan) or a text list file; UserError names SRC."""
    if not os.path.exists(src):
        raise UserError(f'source {src} does not exist')
    if os.path.isdir(src):
        return scan_folder(src)
    if is_image_name(src):
        raise UserError(f'source {src} is a single image; pass its folder or a list file')
    if src.lower().endswith('.json'):     # read as a list, each line of JSON a missing image
        raise UserError(f'source {src} is a JSON file, not a folder or list file: a COCO '
                        f'boxes file goes with --boxes, and SRC is then its image folder')
    return read_list_file(src)


# folders that archivers and file systems make beside the data, never data: macOS zip
# archives' __MACOSX/ (AppleDouble ._name.jpg files), ext4's lost+found at a disk's root
DEBRIS_FOLDERS = ('__MACOSX', 'lost+found')


def walk_visible(root, repeats=None):
    """``(folder, files)`` for every folder under ``root`` in sorted order, following links,
    hidden files and folders (``.name``) and :data:`DEBRIS_FOLDERS` left out. A folder reached
    again through a link (a link loop, or one folder linked twice) is read once, at its first
    path; ``repeats`` (a list) collects ``(path, first path)`` for the others. UserError if
    ``root`` or a folder under it cannot be read: left out, its images would be missed."""
    if not os.access(root, os.R_OK | os.X_OK):
        raise UserError(f'cannot read source folder {root}')

    def refuse(err):
        raise UserError(f'cannot read folder {err.filename}: {err.strerror}')
    first_path = {}                 # real folder -> the path it was read at
    for folder, dirs, files in os.walk(root, onerror=refuse, followlinks=True):
        real = os.path.realpath(folder)
        if real in first_path:
            if repeats is not None:
                repeats.append((folder, first_path[real]))
            dirs[:] = []
            continue
        first_path[real] = folder
        # sorted: which path of a folder linked twice is read must not depend on the disk
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d not in DEBRIS_FOLDERS)
        yield folder, [f for f in files if not f.startswith('.')]


def print_repeats(repeats, files=()):
    """A note on stderr naming the folders :func:`walk_visible` read once for two paths, and
    the ``files`` (``(path, first path)``) left out likewise."""
    names = [f'{path} (the folder {first} again)' for path, first in repeats]
    names += [f'{path} (the file {first} again)' for path, first in files]
    if names:
        print(one_line(f'note: a symbolic link leads to a folder or file again: read once, at '
                       f'its first path in sorted order; left out {listed(names)}'),
              file=sys.stderr)


def listed(names):
    """The first few of ``names``, comma separated, and how many more."""
    more = len(names) - _NOTED
    return ', '.join(names[:_NOTED]) + (f' and {more} more' if more > 0 else '')


def extension_counts(counts):
    """``{'.gif': 3, '': 1}`` as ``3 .gif, 1 without extension``."""
    return ', '.join(f"{n} {ext or 'without extension'}" for ext, n in sorted(counts.items()))


def scan_folder(root):
    """Every image under ``root`` (hidden files and folders skipped), sorted by path.

    If every image lies in a folder under ``root`` (ImageFolder layout: ``root/<class>/...``,
    at any depth inside it, as torchvision's ImageFolder takes them), the label is the index of
    its top folder's name among the sorted folder names, and those names are the classes. A
    folder there without an image of a supported extension is refused, as torchvision's
    ImageFolder does: left out, it would shift the labels of the classes after it; so are two
    class folders that are one folder (a link) or whose names differ only in their Unicode form.
    """
    found = []
    ignored = Counter()                     # extension -> files left out
    ignored_in = {}                         # each top-level folder -> its files left out
    repeats = []
    for folder, files in walk_visible(root, repeats):
        rel_folder = os.path.relpath(folder, root)
        parts = () if rel_folder == '.' else tuple(rel_folder.split(os.sep))
        if len(parts) == 1:
            ignored_in[parts[0]] = Counter()
        for name in files:
            if is_image_name(name):
                found.append(parts + (name,))
                continue
            extension = os.path.splitext(name)[1].lower()
            ignored[extension] += 1
            if parts:
                ignored_in[parts[0]][extension] += 1
    supported = ', '.join(IMAGE_EXTENSIONS)
    if not found:
        held = f' (it holds {extension_counts(ignored)})' if ignored else ''
        raise UserError(f'no images ({supported}) found under {root}{held}')
    found.sort()
    ignored = dict(sorted(ignored.items()))
    paths = [os.path.join(root, *parts) for parts in found]
    depths = {len(parts) for parts in found}
    if min(depths) >= 2:
        classes = sorted(ignored_in)
        _check_classes(root, classes, repeats)
        with_images = {parts[0] for parts in found}
        for name in classes:
            if name not in with_images:
                held = ignored_in[name]
                what = f'it holds {extension_counts(held)}' if held else 'it is empty'
                raise UserError(f'class folder {os.path.join(root, name)} has no image with a '
                                f'supported extension ({supported}); {what}')
        print_repeats(repeats)
        index = {name: i for i, name in enumerate(classes)}
        return SampleList([Sample(p, index[parts[0]]) for p, parts in zip(paths, found)],
                          classes, ignored)
    print_repeats(repeats)
    # images in SRC itself beside class folders: the ones that made the set unlabelled
    loose = [p for p, parts in zip(paths, found) if len(parts) == 1] if len(depths) > 1 else []
    return SampleList([Sample(p) for p in paths], [], ignored, loose)


def _check_classes(root, classes, repeats):
    """UserError for class folders that two labels would split one class between: a folder
    linked as a second class folder, and names that differ only in their Unicode form (a Mac
    writes accents decomposed, NFD; Linux tools mostly composed, NFC: they look the same)."""
    for path, first in repeats:
        if os.sep not in os.path.relpath(path, root):        # a class folder itself
            raise UserError(f'class folder {path} is the folder {first} again, through a '
                            f'symbolic link: one folder is one class')
    seen = {}
    for name in classes:
        other = seen.setdefault(unicodedata.normalize('NFC', name), name)
        if other != name:
            raise UserError(f'class folders {ascii(other)} and {ascii(name)} in {root} are '
                            f'one name in two Unicode forms (NFC and NFD, which print alike): '
                            f'rename one')


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        return None


def read_list_file(list_path):
    """Samples from a text file: ``path [label]`` per line; ``#`` lines and blank lines ignored.

    Relative paths are resolved against the list file's folder; a trailing whitespace-separated
    integer is the label (-1 when absent). Missing files are not an error here: they are
    reported as unreadable when the images are checked.
    """
    try:
        # utf-8-sig: a byte-order mark (Windows editors) would otherwise join the first path
        with open(list_path, encoding='utf-8-sig') as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise UserError(f'list file {list_path} is not UTF-8 text') from None
    except OSError as err:
        raise UserError(f'cannot read list file {list_path}: {err.strerror}') from None
    base = os.path.dirname(os.path.abspath(list_path))
    samples = []
    first_seen = {}      # path -> (line number, label): one image may be listed twice, but
    for number, line in enumerate(lines, 1):   # not as two classes
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        label = UNLABELED
        pieces = line.rsplit(None, 1)
        value = _parse_int(pieces[1]) if len(pieces) == 2 else None
        if value is not None:
            # FFCV stores labels as int64: a larger one kills its writer process
            label = check_number(value, f'list file {list_path}:{number}: label')
            line = pieces[0]
        path = os.path.normpath(os.path.join(base, os.path.expanduser(line)))
        if not os.path.exists(path):
            _check_no_bad_label(list_path, number, base, line)
        seen, seen_label = first_seen.setdefault(path, (number, label))
        if seen_label != label:
            raise UserError(f'list file {list_path}:{number}: {line} has {_label(label)}, and '
                            f'{_label(seen_label)} on line {seen}: one image is one class')
        samples.append(Sample(path, label))
    if not samples:
        raise UserError(f'list file {list_path} names no images')
    return SampleList(samples, [])


def _label(label):
    return 'no label' if label == UNLABELED else f'label {label}'


def _check_no_bad_label(list_path, number, base, line):
    """UserError where a listed path that does not exist is an existing file followed by
    words (``a.jpg zero``, ``a.jpg 1 x``): a label that is not a whole number, not a file
    name with spaces to report as missing."""
    for gap in reversed(list(re.finditer(r'\s+', line))):
        head = os.path.normpath(os.path.join(base, os.path.expanduser(line[:gap.start()])))
        if os.path.isfile(head):
            raise UserError(f"list file {list_path}:{number}: '{line[gap.end():]}' after "
                            f"{line[:gap.start()]} is not a label (a whole number)")


# ---------------------------------------------------------------------------- boxes

def _require(entry, keys, where, boxes_path):
    if not isinstance(entry, dict):
        raise UserError(f'boxes file {boxes_path}: {where} is not an object')
    for key in keys:
        if key not in entry:
            raise UserError(f"boxes file {boxes_path}: {where} is missing key '{key}'")


def read_boxes(boxes_path, image_root):
    """Samples for a COCO-style boxes file: one per annotation, label = category index.

    Needs ``images`` [{id, file_name}], ``annotations`` [{image_id, bbox: [x, y, w, h],
    category_id}] and ``categories`` [{id, name}]; ``file_name`` is relative to
    ``image_root``. Classes are the category names sorted by category id. Samples follow the
    order of ``images``, then of the annotations of each image. Crops are filled in later
    by :func:`crop_region`, once the image sizes are known.
    """
    require_file(boxes_path, 'boxes file')
    try:
        with open(boxes_path, encoding='utf-8') as handle:
            data = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f'boxes file {boxes_path} is not valid JSON: {err}') from None
    except OSError as err:
        raise UserError(f'cannot read boxes file {boxes_path}: {err.strerror}') from None
    _require(data, ('images', 'annotations', 'categories'), 'the top level', boxes_path)
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data[key], list):
            raise UserError(f"boxes file {boxes_path}: '{key}' is not a list")

    categories = data['categories']
    for i, cat in enumerate(categories):
        _require(cat, ('id', 'name'), f'categories[{i}]', boxes_path)
    ids = [cat['id'] for cat in categories]
    if len(set(map(repr, ids))) != len(ids):
        raise UserError(f'boxes file {boxes_path}: duplicate category ids')
    try:
        categories = sorted(categories, key=lambda cat: cat['id'])
    except TypeError:
        raise UserError(f'boxes file {boxes_path}: category ids are not comparable') from None
    category_index = {repr(cat['id']): i for i, cat in enumerate(categories)}
    classes = [str(cat['name']) for cat in categories]

    image_path, image_order = {}, {}
    for i, image in enumerate(data['images']):
        _require(image, ('id', 'file_name'), f'images[{i}]', boxes_path)
        key = repr(image['id'])
        if key in image_path:
            raise UserError(f"boxes file {boxes_path}: duplicate image id {image['id']}")
        image_path[key] = os.path.normpath(os.path.join(image_root, str(image['file_name'])))
        image_order[key] = i

    boxed = []
    for i, ann in enumerate(data['annotations']):
        where = f'annotations[{i}]'
        _require(ann, ('image_id', 'bbox', 'category_id'), where, boxes_path)
        image_key, cat_key = repr(ann['image_id']), repr(ann['category_id'])
        if image_key not in image_path:
            raise UserError(f"boxes file {boxes_path}: {where} has unknown image_id "
                            f"{ann['image_id']}")
        if cat_key not in category_index:
            raise UserError(f"boxes file {boxes_path}: {where} has unknown category_id "
                            f"{ann['category_id']}")
        bbox = ann['bbox']
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in bbox)):
            raise UserError(f'boxes file {boxes_path}: {where} bbox is not 4 numbers [x, y, w, h]')
        boxed.append((image_order[image_key], i,
                      Sample(image_path[image_key], category_index[cat_key], list(bbox))))
    if not boxed:
        raise UserError(f'boxes file {boxes_path} has no annotations')
    boxed.sort(key=lambda item: item[:2])
    return SampleList([sample for _, _, sample in boxed], classes)


def crop_region(box, width, height, context, min_size):
    """The whole-pixel crop ``(x, y, w, h)`` for a COCO ``box`` in a ``width x height`` image.

    The part of the box inside the image must be at least ``min_size`` pixels wide and high
    (else None). The crop is the box grown by ``context`` times its width (left and right) and
    height (top and bottom), rounded outwards to whole pixels and clipped to the image.
    """
    x, y, w, h = box
    inside_w = min(width, x + w) - max(0, x)
    inside_h = min(height, y + h) - max(0, y)
    if inside_w <= 0 or inside_h <= 0 or inside_w < min_size or inside_h < min_size:
        return None
    margin_x, margin_y = context * w, context * h
    # clipped before rounding, so that a huge box or margin (an infinite edge) clips too;
    # round() so that float noise (0.1 * 30 = 3.0000000000000004) does not add a pixel
    x0 = math.floor(round(max(0, x - margin_x), 6))
    y0 = math.floor(round(max(0, y - margin_y), 6))
    x1 = math.ceil(round(min(width, x + w + margin_x), 6))
    y1 = math.ceil(round(min(height, y + h + margin_y), 6))
    return (x0, y0, x1 - x0, y1 - y0)


# ---------------------------------------------------------------------------- reading

@contextmanager
def map_in_order(function, items, workers):
    """``map(function, items)`` in order, over a process pool when workers > 1. A worker that
    dies (the out-of-memory killer, a crash in a decoder) ends the map with a UserError:
    ``multiprocessing.Pool`` would wait for its lost results for ever."""
    workers = min(workers, len(items))
    if workers <= 1:
        yield map(function, items)
        return
    chunk = max(1, min(16, len(items) // (workers * 8)))
    pool = concurrent.futures.ProcessPoolExecutor(workers, initializer=_init_reader,
                                                  initargs=(os.getpid(),))
    broken = []
    try:
        yield _in_order(pool, workers, function, items, chunk, broken)
    except BaseException:     # Ctrl-C, SIGTERM, --strict: the workers stop now, not after
        # the chunks they hold (SIGKILL: a SIGTERM that lands while one forks is dropped)
        for process in list(pool._processes.values()):
            process.kill()
        raise
    finally:
        # on error too: the chunks not started are dropped; a broken pool has failed them
        pool.shutdown(wait=True, cancel_futures=not broken)


def _init_reader(parent):
    """A reading process: stops quietly on Ctrl-C and SIGTERM, and dies with the writer."""
    end_quietly_on_stop_signals()
    end_with_parent(parent)


def _apply(function, chunk):
    return [function(item) for item in chunk]


def _in_order(pool, workers, function, items, chunk, broken):
    """``function`` over ``items`` in chunks on ``pool``, the results in order; a worker that
    died is a UserError (``broken`` then holds True). A few chunks per worker are handed out
    ahead of the one read: handing out every chunk at once raced a dead worker's clean-up in
    the pool's manager thread, which then printed a 'dictionary changed size during
    iteration' traceback (Python 3.11). Unlike ``Executor.map``, nothing here cancels the
    chunks handed out when a worker dies: the broken pool fails them itself, and cancelling
    them as well races its manager thread too (an InvalidStateError traceback, CPython
    gh-107219)."""
    done = 0
    starts = iter(range(0, len(items), chunk))

    def hand_out(count):
        for start in itertools.islice(starts, count):
            pending.append(pool.submit(_apply, function, items[start:start + chunk]))
    pending = deque()
    try:
        hand_out(CHUNKS_AHEAD * workers)
        while pending:
            results = pending.popleft().result()
            hand_out(1)            # before the results are used: the workers stay busy
            for result in results:
                yield result
                done += 1
    except concurrent.futures.process.BrokenProcessPool:
        broken.append(True)
        raise UserError(f'an image reading process died (out of memory?) after {done} of '
                        f'{len(items)} images were read; nothing was written') from None
