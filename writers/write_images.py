"""Write images to an FFCV ``.beton`` plus a JSON sidecar.

    python writers/write_images.py SRC OUT.beton [--max-resolution 512] [--write-mode jpg] ...

SRC is an image folder (an ImageFolder layout gives class labels), a text list file, or, with
``--boxes``, the folder that a COCO-style boxes file's ``file_name`` entries are relative to.
Every image is first decoded once to check it (in parallel); unreadable ones are skipped and
listed, or are fatal with ``--strict``. The real FFCV ``DatasetWriter`` then writes the
samples ``(image, label)`` to a temporary file that is renamed to OUT only on success, and
``OUT.beton.json`` records where each sample came from. :func:`write_images` is the library entry
point; ``main`` is a thin argparse wrapper around it.
"""
import ctypes
import math
import multiprocessing
import os
import sys

import numpy as np

from fastssl_common.atomic import stop_signals_held
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import IMAGE, IMAGES, LABEL
from fastssl_common.images import IMAGE_EXTENSIONS, load_rgb
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag, check_number
from writers.image_sources import (
    check_images,
    crop_region,
    extension_counts,
    find_images,
    probe_image,
    read_boxes,
)
from writers.writer_common import (
    add_output_arguments,
    check_output,
    check_resolution,
    check_workers,
    make_writer,
    page_size_for,
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
                 progress=None):
    """Write the images of ``src`` to the FFCV file ``out`` and its sidecar ``out + '.json'``.

    ``max_resolution`` caps the longest side (0: no cap); ``write_mode`` is 'jpg', 'raw' or
    'proportion' (JPEG with probability ``compress_probability``); ``boxes`` is a COCO-style
    JSON file whose boxes become the samples; ``progress=False`` hides the progress (else a
    bar on a terminal, a line every 10 % elsewhere). Returns a summary dict: ``out``,
    ``sidecar``, ``num_samples``, ``classes``, ``skipped`` (list of {path, reason}),
    ``small_boxes_skipped``, ``converted`` (original image modes other than RGB, with
    counts), ``ignored`` (a folder's files left out for their extension: {extension: count}),
    ``loose_images`` (images in a folder beside class folders, which make it unlabelled) and
    ``options``.
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
    out = check_output(out)
    with held_output(out):
        if boxes is None:
            source = find_images(src)
        else:
            if not os.path.isdir(src):
                raise UserError(f'source {src} must be the image folder when --boxes is given'
                                if os.path.exists(src) else f'source {src} does not exist')
            source = read_boxes(boxes, src)

        sizes, modes, skipped = check_images(source.paths, options['workers'], strict, progress)
        items, samples, small_boxes = [], [], 0
        for sample in source.samples:
            if sample.path not in sizes:
                continue                                  # unreadable: already in `skipped`
            height, width = sizes[sample.path]
            if sample.box is not None:
                sample.crop = crop_region(sample.box, width, height, box_context, min_box_size)
                if sample.crop is None:
                    small_boxes += 1
                    continue
                width, height = sample.crop[2:]
            problem = _size_problem(height, width, max_resolution)
            if problem:
                if strict:
                    raise UserError(f'image {sample.path}: {problem} (--strict)')
                skipped.append({'path': sample.path, 'reason': problem})
                continue
            items.append((sample.path, sample.crop, sample.label, (height, width)))
            samples.append({'source': os.path.abspath(sample.path), 'box': sample.box,
                            'crop': None if sample.crop is None else list(sample.crop),
                            'label': sample.label})
        if not items:
            if small_boxes:
                raise UserError(f'no box in {boxes} is at least {min_box_size} pixels wide and '
                                f'high inside a readable image ({small_boxes} smaller)')
            first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ''
            raise UserError(f'no readable images in {src} ({len(skipped)} skipped{first})')

        metadata = {'format': IMAGES.sidecar, 'num_samples': len(items), 'classes': source.classes,
                    'samples': samples, 'skipped': skipped,
                    'small_boxes_skipped': small_boxes,
                    'options': dict(options, src=os.path.abspath(src))}
        sidecar = write_outputs(
            out, lambda tmp: _write_beton(tmp, out, items, options, progress), metadata, progress)
        return {'out': out, 'sidecar': sidecar, 'num_samples': len(items),
                'classes': source.classes, 'skipped': skipped, 'small_boxes_skipped': small_boxes,
                'converted': {mode: n for mode, n in sorted(modes.items()) if mode != 'RGB'},
                'ignored': source.ignored, 'loose_images': source.loose,
                'options': metadata['options']}


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


def _size_problem(height, width, max_resolution):
    """Why FFCV cannot store an image of this size, or None."""
    stored_h, stored_w = stored_size(height, width, max_resolution)
    if min(stored_h, stored_w) < 1:
        return f'too thin ({width}x{height}) to shrink to --max-resolution {max_resolution}'
    if max(stored_h, stored_w) > MAX_SIDE or stored_h * stored_w * 3 > MAX_IMAGE_BYTES:
        return f'too large ({stored_w}x{stored_h}) to store; lower --max-resolution'
    return None


# ---------------------------------------------------------------------------- writing

class SampleDataset:
    """The indexed dataset FFCV's writer workers read: sample i -> (RGB uint8 array, label).

    Each item is ``(path, crop or None, label, (height, width))``. A file that fails to decode
    here (changed since it was checked) must not kill the worker, which would hang FFCV's
    writer: it is recorded in ``failed`` (first failing index) and a 1x1 placeholder is written
    instead; the caller then discards the whole file.
    """

    def __init__(self, items, failed):
        self.items = items
        self.failed = failed
        self._cached_path, self._cached = None, None   # boxes of one image are consecutive

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        path, crop, label, shape = self.items[index]
        np.random.seed(_PROPORTION_SEED + index)       # FFCV's 'proportion' draws from np.random
        try:
            if path != self._cached_path:
                self._cached_path, self._cached = None, load_rgb(path)
                self._cached_path = path
            rgb = self._cached
            if crop is not None:
                x, y, w, h = crop
                rgb = rgb[y:y + h, x:x + w]
            if rgb.shape[:2] != tuple(shape):
                raise ValueError(f'{path} changed since it was checked')
            return np.ascontiguousarray(rgb), label
        except Exception:  # reported by the caller, which throws the output away
            with self.failed.get_lock():
                if self.failed.value < 0:
                    self.failed.value = index
            return np.zeros((1, 1, 3), np.uint8), label


def _page_size(items, max_resolution):
    """A power-of-two FFCV page that holds the largest sample, raw or JPEG, with room to spare."""
    return page_size_for(max(math.prod(stored_size(h, w, max_resolution)) * 3
                             for *_, (h, w) in items))


def _write_beton(tmp, out, items, options, progress):
    """Write ``items`` with FFCV's DatasetWriter to ``tmp`` (``out``'s temporary name, which
    error messages do not show)."""
    # slow import (Numba, torch): only when writing; a Ctrl-C inside torch's import would
    # break every later import of it in this interpreter (a notebook's kernel): held till done
    with stop_signals_held():
        from ffcv.fields import IntField, RGBImageField

    fields = {
        IMAGE: RGBImageField(write_mode=options['write_mode'],
                             max_resolution=options['max_resolution'] or None,
                             jpeg_quality=options['jpeg_quality'],
                             compress_probability=options['compress_probability']),
        LABEL: IntField(),
    }
    chunk = max(1, min(100, math.ceil(len(items) / (options['workers'] * 4))))
    workers = min(options['workers'], math.ceil(len(items) / chunk))
    failed = multiprocessing.Value(ctypes.c_int64, -1)
    writer = make_writer(tmp, fields, _page_size(items, options['max_resolution']), workers,
                         progress, name=out)
    writer.from_indexed_dataset(SampleDataset(items, failed), chunksize=chunk)
    if failed.value >= 0:
        path = items[failed.value][0]
        reason = probe_image(path)[3] or 'it changed since it was checked'
        raise UserError(f'image {path} could not be read while writing ({reason}); '
                        f'{out} was not written')


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
    return parser


def _print_summary(summary):
    skipped = summary['skipped']
    if skipped:
        print(f'skipped {len(skipped)} unreadable images:', file=sys.stderr)
        for entry in skipped[:20]:
            print(f"  {entry['path']}: {entry['reason']}", file=sys.stderr)
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
    classes = summary['classes']
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
        box_context=args.box_context, min_box_size=args.min_box_size)
    _print_summary(summary)
    print_output(summary, replacing)
    return 0



def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
