"""Write images to an FFCV ``.beton`` plus a JSON sidecar.

    python writers/write_images.py SRC OUT.beton [--max-resolution 512] [--write-mode jpg]
        [--shard I/N] ...

SRC is an image folder (an ImageFolder layout gives class labels), a text list file, or, with
``--boxes``, the folder that a COCO-style boxes file's ``file_name`` entries are relative to.
Every image is decoded once, in a process pool: unreadable ones are skipped and listed (fatal
with ``--strict``), and each sample is encoded by FFCV's own ``RGBImageField`` and appended
to the reading process's spool file in a folder beside OUT. The real FFCV ``DatasetWriter``
then copies the samples, in sample order, into a temporary file, renamed to OUT only on
success (the same bytes for any ``--workers``), and ``OUT.beton.json`` records where each
sample came from. ``--shard I/N`` writes one shard of SRC's images (``merge_betons.py``
joins the shards).
:func:`write_images` is the library entry point; ``main`` is a thin argparse wrapper around it.
"""
import itertools
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np

from fastssl_common.atomic import cannot_write, stop_signals_held
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, one_line, path_argument, run_cli
from fastssl_common.formats import IMAGE, IMAGES, LABEL
from fastssl_common.images import IMAGE_EXTENSIONS, describe_failure, load_rgb_with_mode
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag, check_number
from fastssl_common.progress import progress_bar
from writers.image_sources import (
    UNLABELED,
    crop_region,
    extension_counts,
    find_images,
    map_in_order,
    read_boxes,
)
from writers.inspect_pairs import JPEG_MAX_SIDE
from writers.shards import add_shard_argument, check_shard, print_shard, select_shard
from writers.spool import EncodedImages, Spool, read_spooled, spool_folder, write_spooled
from writers.writer_common import (
    add_output_arguments,
    check_output,
    check_resolution,
    check_workers,
    print_output,
    stored_size,
    write_outputs,
)

WRITE_MODES = ('jpg', 'raw', 'proportion')
MAX_SIDE = 65535                 # FFCV stores width and height as uint16
MAX_IMAGE_BYTES = 512 << 20      # raw bytes of one stored image; keeps FFCV pages < 4 GiB
_PROPORTION_SEED = 0             # per-sample seed, so 'proportion' picks jpg/raw reproducibly
DEFAULT_COMPRESS_PROBABILITY = 0.5
DEFAULT_BOX_CONTEXT = 0.1
DEFAULT_MIN_BOX_SIZE = 16


def write_images(src, out, *, max_resolution=512, jpeg_quality=90, write_mode='jpg',
                 compress_probability=DEFAULT_COMPRESS_PROBABILITY, workers=None, strict=False,
                 boxes=None, box_context=DEFAULT_BOX_CONTEXT, min_box_size=DEFAULT_MIN_BOX_SIZE,
                 shard=None, progress=None):
    """Write the images of ``src`` to the FFCV file ``out`` and its sidecar ``out + '.json'``.

    ``max_resolution`` caps the longest side (0: no cap); ``write_mode`` is 'jpg', 'raw' or
    'proportion' (JPEG with probability ``compress_probability``); ``boxes`` is a COCO-style
    JSON file whose boxes become the samples; ``shard`` ('I/N' or (I, N)) keeps the images of
    that shard only (None: all); ``progress=False`` hides the progress (else a bar on a
    terminal, a line every 10 % elsewhere). Returns a summary dict: ``out``,
    ``sidecar``, ``num_samples``, ``classes`` (the class names; none for a list file, whose
    labels are its numbers), ``labels`` (the distinct labels given, sorted), ``skipped``
    (list of {path, reason}),
    ``small_boxes_skipped``, ``converted`` (original image modes other than RGB, with
    counts), ``ignored`` (a folder's files left out for their extension: {extension: count}),
    ``loose_images`` (images in a folder beside class folders, which make it unlabelled),
    ``shard`` (the sidecar's entry, None without a shard) and ``options``.
    Paths may be str or ``pathlib.Path``. Raises UserError for bad input; on any failure neither
    ``out`` nor the sidecar is created.
    """
    src, out = path_argument(src, 'src'), path_argument(out, 'out')
    if boxes is not None:
        boxes = path_argument(boxes, '--boxes')
    progress = check_flag(progress, 'progress', unset=True)
    options = _check_options(dict(
        max_resolution=max_resolution, jpeg_quality=jpeg_quality, write_mode=write_mode,
        compress_probability=compress_probability, workers=workers,
        strict=check_flag(strict, '--strict'),
        boxes=None if boxes is None else os.path.abspath(boxes), box_context=box_context,
        min_box_size=min_box_size))
    shard = check_shard(shard)
    out = check_output(out, src)
    with held_output(out), spool_folder(out) as spool_dir:
        if boxes is None:
            source = find_images(src)
        else:
            if not os.path.isdir(src):
                raise UserError(f'source {src} must be the image folder when --boxes is given'
                                if os.path.exists(src) else f'source {src} does not exist')
            source = read_boxes(boxes, src)
        images = _by_image(source.samples)
        images, shard_entry = select_shard(images, shard, src, 'image',
                                           [] if shard is None else _image_listing(images, src))

        # slow import (Numba, torch): only when writing; a Ctrl-C inside torch's import would
        # break every later import of it in this interpreter (a notebook's kernel): held
        with stop_signals_held():
            from ffcv.fields import IntField, RGBImageField
        fields = {
            IMAGE: RGBImageField(write_mode=options['write_mode'],
                                 max_resolution=options['max_resolution'] or None,
                                 jpeg_quality=options['jpeg_quality'],
                                 compress_probability=options['compress_probability']),
            LABEL: IntField(),
        }
        read = _read_images(images, ImageEncoder(fields[IMAGE], options), spool_dir,
                            options['workers'], strict, shard_entry is not None, progress)
        if not read.samples:
            skipped = read.skipped
            first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ''
            if shard_entry is not None:
                # this shard's images only: the boxes file as a whole may hold larger boxes
                what = (f'no box at least {min_box_size} pixels wide and high inside a readable '
                        f'image ({read.small_boxes} smaller; ' if read.small_boxes
                        else 'no readable image (')
                raise UserError(f'shard {shard[0]}/{shard[1]} of {src} holds {what}'
                                f'{len(skipped)} skipped{first}): nothing to write; merge the '
                                f'other shards without it')
            if read.small_boxes:
                raise UserError(f'no box in {boxes} is at least {min_box_size} pixels wide and '
                                f'high inside a readable image ({read.small_boxes} smaller)')
            raise UserError(f'no readable images in {src} ({len(skipped)} skipped{first})')

        metadata = {'format': IMAGES.sidecar, 'num_samples': len(read.samples),
                    'classes': source.classes, 'samples': read.samples, 'skipped': read.skipped,
                    'small_boxes_skipped': read.small_boxes,
                    'options': dict(options, src=os.path.abspath(src))}
        if shard_entry is not None:
            metadata['shard'] = shard_entry
        labels = np.array([sample['label'] for sample in read.samples], np.int64)

        def write_beton(tmp):
            with progress_bar(total=len(read.samples), unit='img', desc='writing',
                              enabled=progress is not False) as bar:
                images = EncodedImages(_spooled(read.spool_paths, read.stored, bar.update),
                                       int(read.stored['nbytes'].max()))
                write_spooled(tmp, fields, {IMAGE: images, LABEL: labels}, ())

        sidecar = write_outputs(out, write_beton, metadata, progress)
        return {'out': out, 'sidecar': sidecar, 'num_samples': len(read.samples),
                'classes': source.classes,
                'labels': np.unique(labels[labels != UNLABELED]).tolist(),
                'skipped': read.skipped,
                'small_boxes_skipped': read.small_boxes,
                'converted': {mode: n for mode, n in sorted(read.modes.items()) if mode != 'RGB'},
                'ignored': source.ignored, 'loose_images': source.loose,
                'shard': shard_entry, 'options': metadata['options']}


# ---------------------------------------------------------------------------- checks

def _check_options(options):
    if options['write_mode'] not in WRITE_MODES:
        raise UserError(f"--write-mode must be one of {', '.join(WRITE_MODES)}, got "
                        f"{options['write_mode']!r}")
    checked = dict(
        options, max_resolution=check_resolution(options['max_resolution']),
        jpeg_quality=check_number(options['jpeg_quality'], '--jpeg-quality', 1, 100),
        compress_probability=check_number(options['compress_probability'],
                                          '--compress-probability', 0, 1, integer=False),
        workers=check_workers(options['workers']),
        box_context=check_number(options['box_context'], '--box-context', 0, integer=False),
        min_box_size=check_number(options['min_box_size'], '--min-box-size', 0, integer=False))
    # options that would change nothing are refused, not silently ignored (a value equal to
    # its default cannot be told from an omitted one, and changes nothing either)
    if (checked['write_mode'] != 'proportion'
            and checked['compress_probability'] != DEFAULT_COMPRESS_PROBABILITY):
        raise UserError('--compress-probability needs --write-mode proportion')
    if checked['boxes'] is None:
        for flag, default in (('box_context', DEFAULT_BOX_CONTEXT),
                              ('min_box_size', DEFAULT_MIN_BOX_SIZE)):
            if checked[flag] != default:
                raise UserError(f"--{flag.replace('_', '-')} needs --boxes FILE")
    return checked


def _size_problem(height, width, max_resolution, write_mode):
    """Why FFCV cannot store an image of this size, or None."""
    stored_h, stored_w = stored_size(height, width, max_resolution)
    if min(stored_h, stored_w) < 1:
        return f'too thin ({width}x{height}) to shrink to --max-resolution {max_resolution}'
    if max(stored_h, stored_w) > MAX_SIDE or stored_h * stored_w * 3 > MAX_IMAGE_BYTES:
        return f'too large ({stored_w}x{stored_h}) to store; lower --max-resolution'
    # FFCV's JPEG encoder raises for a side over libjpeg's limit ('proportion' may draw JPEG)
    if write_mode != 'raw' and max(stored_h, stored_w) > JPEG_MAX_SIDE:
        return (f'too large ({stored_w}x{stored_h}) to store as JPEG (at most {JPEG_MAX_SIDE} '
                f'px a side); lower --max-resolution or use --write-mode raw')
    return None


# ---------------------------------------------------------------------------- writing

SMALL_BOX = 'small box'      # a sample's outcome: its box is below --min-box-size
# Where a stored image lies in the spool files, and what FFCV's field stores with it.
STORED = np.dtype([('mode', '<u1'), ('height', '<u2'), ('width', '<u2'), ('spool', '<i4'),
                   ('offset', '<i8'), ('nbytes', '<i8')])


class ImageEncoder:
    """Decode one image once and encode each of its samples as FFCV's ``RGBImageField`` stores
    it (the field's own ``encode``: resize, JPEG or raw).

    Called with ``(path, [(index, box or None), ...])`` (``index``: the sample's place in the
    source, which seeds ``proportion``'s choice); returns ``(mode, reason, outcomes)``: the
    file's original Pillow mode, or why it is unreadable (then no outcomes), and per sample
    ``(crop, (mode, height, width, data))``, :data:`SMALL_BOX`, or why FFCV cannot store it
    (a str). Runs in the pool's workers; never raises for a bad file.
    """

    def __init__(self, field, options):
        self.field, self.options = field, options

    def __call__(self, task):
        path, samples = task
        try:
            rgb, mode = load_rgb_with_mode(path)
        except Exception as err:  # any decoder failure means "unreadable": reported, not lost
            return None, describe_failure(err), []
        return mode, None, [self._sample(rgb, index, box) for index, box in samples]

    def _sample(self, rgb, index, box):
        crop = None
        if box is not None:
            crop = crop_region(box, rgb.shape[1], rgb.shape[0], self.options['box_context'],
                               self.options['min_box_size'])
            if crop is None:
                return SMALL_BOX
            x, y, w, h = crop
            rgb = rgb[y:y + h, x:x + w]
        problem = _size_problem(*rgb.shape[:2], self.options['max_resolution'],
                                self.field.write_mode)
        if problem:
            return problem
        np.random.seed(_PROPORTION_SEED + index)       # FFCV's 'proportion' draws from np.random
        record = np.zeros(1, self.field.metadata_type)
        stored = []

        def keep(nbytes):
            stored.append(np.empty(nbytes, np.uint8))
            return 0, stored[-1]

        self.field.encode(record, np.ascontiguousarray(rgb), keep)
        return crop, (int(record['mode'][0]), int(record['height'][0]),
                      int(record['width'][0]), stored[0])


class SpoolingEncoder:
    """An :class:`ImageEncoder` whose stored bytes each process appends to a spool file of its
    own in ``folder``: the pool sends back where they lie, ``(file name, offset, nbytes)`` in
    place of ``data``, not megabytes of pixels (a reading process killed while it sent them
    left the pool waiting for ever for the rest)."""

    def __init__(self, encoder, folder):
        self.encoder, self.folder = encoder, folder

    def __call__(self, task):
        mode, reason, outcomes = self.encoder(task)
        if not any(isinstance(outcome, tuple) for outcome in outcomes):
            return mode, reason, outcomes
        name = f'images-{os.getpid()}'
        with Spool(os.path.join(self.folder, name), append=True) as spool:
            return mode, reason, [
                (outcome[0], (*outcome[1][:3], name, *spool.append(outcome[1][3])))
                if isinstance(outcome, tuple) else outcome for outcome in outcomes]


@dataclass
class ReadImages:
    """What reading the source gave: the sidecar's ``samples`` (kept, in order), their
    ``stored`` images (:data:`STORED` array) in the files ``spool_paths``, ``skipped``
    ({path, reason}), the count of ``small_boxes`` and of the readable files' original
    ``modes``."""
    samples: list
    stored: np.ndarray
    spool_paths: list
    skipped: list
    small_boxes: int
    modes: Counter


def _read_images(images, encoder, spool_dir, workers, strict, indexed, progress):
    """Read and encode every image of ``images`` (:func:`_by_image`) once, in the pool, into
    spool files in ``spool_dir``; the samples are kept in sample order (so the file written is
    the same for any ``workers``). ``indexed``: each sample and skipped entry records its
    place in the source's samples (a shard's, which a merge puts back in that order)."""
    tasks = [(path, [(index, sample.box) for index, sample in group])
             for path, group, _ in images]
    kept, stored, skipped, small_boxes, modes = [], [], [], 0, Counter()
    spools = {}         # spool file name -> its number

    def place(index):
        return {'index': index} if indexed else {}
    with map_in_order(SpoolingEncoder(encoder, spool_dir), tasks, workers) as results:
        # the bar first: zip then asks it for the item after the last, which completes it
        for (mode, reason, outcomes), (path, group, first) in zip(
                progress_bar(results, total=len(tasks), unit='img', desc='reading images',
                             enabled=progress is not False), images):
            if reason is not None:
                if strict:
                    raise UserError(f'unreadable image {path}: {reason} (--strict)')
                if first:
                    skipped.append({'path': path, 'reason': reason, **place(group[0][0])})
                continue
            modes[mode] += first
            for (index, sample), outcome in zip(group, outcomes):
                if outcome == SMALL_BOX:
                    small_boxes += 1
                elif isinstance(outcome, str):
                    if strict:
                        raise UserError(f'image {path}: {outcome} (--strict)')
                    skipped.append({'path': path, 'reason': outcome, **place(index)})
                else:
                    crop, (image_mode, height, width, name, offset, nbytes) = outcome
                    stored.append((image_mode, height, width, spools.setdefault(name, len(spools)),
                                   offset, nbytes))
                    kept.append({'source': os.path.abspath(path), 'box': sample.box,
                                 'crop': None if crop is None else list(crop),
                                 'label': sample.label, **place(index)})
    return ReadImages(kept, np.array(stored, STORED),
                      [os.path.join(spool_dir, name) for name in spools], skipped, small_boxes,
                      modes)


def _by_image(samples):
    """``(path, [(index, sample), ...], first)`` for each run of samples of one image (a box
    file's boxes of one image are consecutive: the image is decoded once for all of them);
    ``first``: the image is not in an earlier run (a file listed again further on is read
    again, but counted once)."""
    seen = set()
    images = []
    for path, group in itertools.groupby(enumerate(samples), lambda s: s[1].path):
        images.append((path, list(group), path not in seen))
        seen.add(path)
    return images


def _image_listing(images, src):
    """SRC's listing for :func:`writers.shards.select_shard`: each image's path relative to
    SRC (a list file's: to its images' common folder) with its samples' labels and boxes."""
    if os.path.isdir(src):
        root = src
    else:
        # not the list file's folder: one list of absolute paths, read at other places (a
        # copy in each task's scratch folder), lists the same files. The first and last paths
        # in sorted order share only the folders all share; min and max find them unsorted
        paths = [path for path, _, _ in images]
        root = os.path.commonpath([min(paths), max(paths)])
    return [os.path.relpath(path, root) + '\t' + json.dumps(
        [[sample.label, sample.box] for _, sample in group]) for path, group, _ in images]


def _spooled(spool_paths, stored, taken):
    """The spooled images in order, as ``(mode, height, width, data)``; ``taken(1)`` as each
    is handed out."""
    handles = []
    try:
        for path in spool_paths:
            try:
                handles.append(os.open(path, os.O_RDONLY))
            except OSError as err:
                raise cannot_write(path, err.strerror) from None
        for entry in stored:
            number = int(entry['spool'])
            data = read_spooled(handles[number], spool_paths[number], int(entry['offset']),
                                int(entry['nbytes']))
            taken(1)
            yield int(entry['mode']), int(entry['height']), int(entry['width']), data
    finally:
        for handle in handles:
            os.close(handle)


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog='write_images.py', description=(
        'Write an image folder, a list file, or COCO boxes to an FFCV .beton '
        '(and OUT.beton.json with per-sample sources).'))
    add_output_arguments(parser, source='image folder or text list file',
                         workers='processes for checking and writing', unreadable='image')
    parser.add_argument('--write-mode', choices=WRITE_MODES, default='jpg',
                        help='store JPEG, raw pixels, or a random proportion of JPEG')
    parser.add_argument('--compress-probability', type=float,
                        default=DEFAULT_COMPRESS_PROBABILITY,
                        help='JPEG share for --write-mode proportion (default '
                             f'{DEFAULT_COMPRESS_PROBABILITY})')
    parser.add_argument('--boxes', metavar='FILE',
                        help='COCO-style JSON; one sample per box, paths relative to SRC')
    parser.add_argument('--box-context', type=float, default=DEFAULT_BOX_CONTEXT,
                        help='margin around each box, as a fraction of its size (default '
                             f'{DEFAULT_BOX_CONTEXT}; needs --boxes)')
    parser.add_argument('--min-box-size', type=int, default=DEFAULT_MIN_BOX_SIZE,
                        help='skip boxes narrower or lower than this many pixels (default '
                             f'{DEFAULT_MIN_BOX_SIZE}; needs --boxes)')
    add_shard_argument(parser, 'image')
    return parser


def _print_summary(summary):
    skipped = summary['skipped']
    if skipped:
        print(f'skipped {len(skipped)} unreadable images:', file=sys.stderr)
        for entry in skipped[:20]:
            print(one_line(f"  {entry['path']}: {entry['reason']}"), file=sys.stderr)
        if len(skipped) > 20:
            print(f"  ... and {len(skipped) - 20} more (listed in {summary['sidecar']})",
                  file=sys.stderr)
    if summary['ignored']:
        print(f"note: {sum(summary['ignored'].values())} files left out for their extension "
              f"({extension_counts(summary['ignored'])}); images are read from "
              f"{', '.join(IMAGE_EXTENSIONS)}", file=sys.stderr)
    loose = summary['loose_images']
    if loose:
        # an ImageFolder layout but for these: the user most likely wanted class labels
        which = f'1: {loose[0]}' if len(loose) == 1 else f'{len(loose)}, first: {loose[0]}'
        print(f"note: written unlabelled because {summary['options']['src']} also holds "
              f"images outside its class folders ({which}); move them into a class folder, or "
              f"out, for class labels", file=sys.stderr)
    # a list file's labels are numbers of its own, without names
    classes = summary['classes'] or [str(label) for label in summary['labels']]
    shown = ', '.join(classes[:10]) + (', ...' if len(classes) > 10 else '')
    print(f"samples written: {summary['num_samples']}")
    print(f'classes: {len(classes)}' + (f' ({shown})' if classes else ''))
    if summary['small_boxes_skipped']:
        print(f"boxes too small (< {summary['options']['min_box_size']:g} px): "
              f"{summary['small_boxes_skipped']}")
    if summary['converted']:
        print('converted to RGB: ' + ', '.join(f'{n} {mode}'
                                               for mode, n in summary['converted'].items()))
    print(f'skipped: {len(skipped)}')


def main(argv=None):
    args = build_parser().parse_args(argv)
    replacing = os.path.exists(args.out)
    summary = write_images(
        args.src, args.out, max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
        write_mode=args.write_mode, compress_probability=args.compress_probability,
        workers=args.workers, strict=args.strict, boxes=args.boxes,
        box_context=args.box_context, min_box_size=args.min_box_size, shard=args.shard)
    _print_summary(summary)
    print_shard(summary['shard'], 'image')
    print_output(summary, replacing)
    return 0



def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
