"""Data-loading throughput: fastssl's decode-once pair loader against stock FFCV and torchvision.

    python -m benchmarks.loader [--samples 1000] [--resolution 224] [--batch-size 64]
                                [--workers N] [--epochs 2] [--torchvision-samples N]
                                [--data DIR] [--max-resolution PX] [--json OUT] [--quick]

One run, one machine, one JPEG ``.beton`` (and the same JPEG files for torchvision). Methods:

(a) fastssl ``MultiViewLoader``, crop+flip only: each JPEG decoded once, two views  (pairs/s)
(b) the same plus the full MoCo v2 CPU photometric augment (``PhotometricAugment``) (pairs/s)
(c) stock FFCV, two ``RandomResizedCropRGBImageDecoder`` + ``RandomHorizontalFlip`` pipelines
    over the one ``image`` field (the second output named ``image2``): decodes twice (pairs/s)
(d) stock FFCV, one such pipeline: a single view                                  (images/s)
(e) torchvision: an ImageFolder-style Dataset (PIL open + ``convert('RGB')``) with MoCo v2's
    ``TwoCropsTransform`` and a ``DataLoader``; crop+flip only, and the full augment  (pairs/s)

and the ratios the issue targets: (a)/(c) >= 1.5, (a)/(d) >= 0.8, (a)/(e crop+flip) >= 3,
(b)/(e full) >= 5, each printed with PASS or MISS.

Choices (all the same for every method unless said):

* Data: by default ``--samples`` JPEGs (quality 90, longest side 360-400 px) made from the real
  photographs shipped in scikit-image's ``skimage/data`` and scikit-learn's sample images (RGB
  or gray, shorter side >= 128; the synthetic ones - chessboards, phantom, colour wheel - are
  left out) by random crops, flips and rescales under a fixed seed, saved in an ImageFolder
  layout (one class per source photo) in a temporary folder, and written to a ``.beton`` with
  this project's ``writers.write_images`` (jpg mode, quality 90, ``--max-resolution`` 400, so
  FFCV stores the same pixels torchvision reads). ``--data DIR`` uses an existing image folder
  instead; then ``--max-resolution`` defaults to 0 (no cap) so both sides decode images of the
  same size. The torchvision Dataset reads exactly the files the ``.beton`` holds, in order.
* Threads: FFCV gets ``num_workers = --workers`` (Numba threads); torchvision's DataLoader
  gets ``num_workers = --workers`` processes. Same batch size, random order, ``drop_last``.
* torchvision transforms are the v1 ``torchvision.transforms`` on PIL images, as in the MoCo
  reference code: ``RandomResizedCrop(R, scale=(0.2, 1))``, [``RandomApply([ColorJitter(0.4,
  0.4, 0.4, 0.1)], p=0.8)``, ``RandomGrayscale(0.2)``, ``RandomApply([GaussianBlur(k, sigma=
  (0.1, 2.0))], p=0.5)`` with the same odd k ~ 0.1 R as ours], ``RandomHorizontalFlip``,
  ``ToTensor``. No ``Normalize`` (FFCV's outputs here are uint8 too; normalising belongs to
  the GPU side). The DataLoader uses ``persistent_workers=True``, which favours the baseline:
  worker start-up is paid in the warm-up epoch, not in the timed ones.
* Timing: every method first runs one untimed warm-up epoch (Numba compilation, worker
  start-up, page cache), then ``--epochs`` timed epochs, round-robin across methods so that
  background load hits them alike. An epoch is timed from creating the iterator to its last
  batch (FFCV iterators are always run to completion, which closes them). The reported
  throughput is the median over the timed epochs of (samples yielded / seconds).
* Budget: the default run (1000 samples, 224 px, 2 timed epochs) takes a few minutes on two
  idle cores, most of it torchvision with the full augment. ``--torchvision-samples N`` runs
  the two torchvision methods on the first N samples only (a per-sample rate does not depend
  on the dataset size once files are cached); by default they use all samples.
* ``--quick`` is a smoke run for tests (64 samples, 64 px, batch 16, 1 timed epoch, 1 worker:
  with one thread FFCV compiles serial Numba code, which saves ~20 s of parallel compilation;
  explicit options still win). Its numbers mean nothing; it takes ~30-45 s, nearly all of it
  imports and Numba compilation.

Numbers are only comparable within one run; other processes on the machine add noise (the
load average at the start is printed).
"""
import os
import tempfile
import time

from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.pipeline_spec import PipelineSpec
from ffcv.transforms import RandomHorizontalFlip, ToTensor

from benchmarks.common import (
    Method,
    add_output_options,
    apply_preset,
    benchmark_parser,
    machine_info,
    print_machine,
    print_ratios,
    print_table,
    ratio_rows,
    require_at_least,
    write_results,
)
from benchmarks.data import GENERATED_LONGEST_SIDE, JPEG_QUALITY, SEED, build_beton, make_jpegs
from benchmarks.torchvision_baseline import torchvision_loader
from fastssl_common.errors import UserError, run_cli
from fastssl_common.formats import IMAGE, LABEL
from loaders.pair_loader import MultiViewLoader, open_beton
from loaders.photometric_params import make_strengths

SCALE = (0.2, 1.0)
QUICK = dict(samples=64, resolution=64, batch_size=16, epochs=1, workers=1)
DEFAULTS = dict(samples=1000, resolution=224, batch_size=64, epochs=2)

# (key, label, unit); the table lists them in this order
METHODS = [
    ('a', '(a) fastssl pair loader, crop+flip (decode once)', 'pairs/s'),
    ('b', '(b) fastssl pair loader, full MoCo v2 CPU augment', 'pairs/s'),
    ('c', '(c) stock FFCV, two pipelines (decode twice)', 'pairs/s'),
    ('d', '(d) stock FFCV, one view', 'images/s'),
    ('e_crop', '(e) torchvision DataLoader, crop+flip', 'pairs/s'),
    ('e_full', '(e) torchvision DataLoader, full MoCo v2 augment', 'pairs/s'),
]
# (numerator, denominator, label, target)
RATIOS = [
    ('a', 'c', '(a)/(c)       decode-once vs stock FFCV decode-twice', 1.5),
    ('a', 'd', '(a)/(d)       pairs/s vs stock FFCV single-view images/s', 0.8),
    ('a', 'e_crop', '(a)/(e crop)  crop+flip vs torchvision crop+flip', 3.0),
    ('b', 'e_full', '(b)/(e full)  full augment vs torchvision full augment', 5.0),
]


# ---------------------------------------------------------------------------- methods

def fastssl_loader(path, args, augment):
    return MultiViewLoader(path, args.batch_size, args.resolution,
                           num_workers=args.workers, seed=SEED, order='random', scale=SCALE,
                           cpu_photometric=make_strengths() if augment else None,
                           drop_last=True)


def stock_ffcv_loader(path, args, n_views):
    """Stock FFCV: ``n_views`` crop+flip pipelines over the one 'image' field."""
    def view():
        return PipelineSpec(IMAGE, decoder=RandomResizedCropRGBImageDecoder(
            (args.resolution, args.resolution), scale=SCALE),
            transforms=[RandomHorizontalFlip(), ToTensor()])

    fields = open_beton(path).handlers
    pipelines = {IMAGE: view()}
    if n_views == 2:
        pipelines['image2'] = view()
    for name in fields:
        if name == LABEL:
            pipelines[LABEL] = [IntDecoder(), ToTensor()]
        elif name != IMAGE:
            pipelines[name] = None
    return Loader(path, batch_size=args.batch_size, num_workers=args.workers,
                  order=OrderOption.RANDOM, seed=SEED, pipelines=pipelines, drop_last=True,
                  os_cache=True, batches_ahead=3)


def build_methods(beton, samples, args):
    tv_samples = samples[:args.torchvision_samples] if args.torchvision_samples else samples
    for name, n in (('the .beton', len(samples)), ('--torchvision-samples', len(tv_samples))):
        if n < args.batch_size:
            raise UserError(f'{name} has {n} samples, fewer than --batch-size {args.batch_size}')
    units = {key: (label, unit) for key, label, unit in METHODS}

    def ffcv_pairs(batch):
        return int(batch[0].shape[0])

    def tv_pairs(batch):
        return int(batch[0][0].shape[0])

    makers = {
        'a': (lambda: fastssl_loader(beton, args, augment=False), ffcv_pairs),
        'b': (lambda: fastssl_loader(beton, args, augment=True), ffcv_pairs),
        'c': (lambda: stock_ffcv_loader(beton, args, n_views=2), ffcv_pairs),
        'd': (lambda: stock_ffcv_loader(beton, args, n_views=1), ffcv_pairs),
        'e_crop': (lambda: torchvision_loader(tv_samples, args, False, SCALE, SEED), tv_pairs),
        'e_full': (lambda: torchvision_loader(tv_samples, args, True, SCALE, SEED), tv_pairs),
    }
    return [Method(key, *units[key], *makers[key]) for key, _, _ in METHODS]


# ---------------------------------------------------------------------------- report

def print_report(info, config, methods, ratios):
    print()
    print_machine(info)
    print(f"config: {config['samples']} samples ({config['data']}), resolution "
          f"{config['resolution']}, batch {config['batch_size']}, {config['workers']} workers, "
          f"{config['epochs']} timed epoch(s) after 1 warm-up; torchvision on "
          f"{config['torchvision_samples']} samples")
    print()
    print_table(methods)
    print()
    print_ratios(ratios)


# ---------------------------------------------------------------------------- main

def build_parser():
    parser = benchmark_parser(
        'loader', 'Loader throughput: fastssl pair loader vs stock FFCV vs torchvision, on one '
        'JPEG .beton (see the module docstring for the choices).')
    parser.add_argument('--samples', type=int, default=None,
                        help=f"generated JPEGs (default {DEFAULTS['samples']}; ignored with "
                        "--data)")
    parser.add_argument('--resolution', type=int, default=None,
                        help=f"output side R in pixels (default {DEFAULTS['resolution']})")
    parser.add_argument('--batch-size', type=int, default=None,
                        help=f"batch size for every method (default {DEFAULTS['batch_size']})")
    parser.add_argument('--workers', type=int, default=None,
                        help='FFCV threads and DataLoader worker processes (default: '
                        'os.cpu_count())')
    parser.add_argument('--epochs', type=int, default=None,
                        help=f"timed epochs per method, after one untimed warm-up (default "
                        f"{DEFAULTS['epochs']})")
    parser.add_argument('--torchvision-samples', type=int, default=None,
                        help='run the torchvision methods on the first N samples only '
                        '(default: all)')
    parser.add_argument('--data', metavar='DIR',
                        help='existing image folder to use instead of generated JPEGs')
    parser.add_argument('--max-resolution', type=int, default=None,
                        help='longest-side cap of the .beton (default 400 for generated '
                        'data, 0 = none with --data)')
    add_output_options(parser, 'smoke run for tests: 64 samples, 64 px, batch 16, 1 epoch, '
                       '1 worker')
    return parser


def resolve(args):
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    if args.workers is None:
        args.workers = os.cpu_count() or 1
    if args.max_resolution is None:
        args.max_resolution = 0 if args.data else GENERATED_LONGEST_SIDE[1]
    require_at_least(args, ('samples', 'resolution', 'batch_size', 'workers', 'epochs'))
    if args.torchvision_samples is not None and args.torchvision_samples < 1:
        raise UserError('--torchvision-samples must be at least 1')
    if not args.data and args.samples < args.batch_size:
        raise UserError(f'--samples {args.samples} is fewer than --batch-size {args.batch_size}')
    if args.torchvision_samples is not None and args.torchvision_samples < args.batch_size:
        raise UserError(f'--torchvision-samples {args.torchvision_samples} is fewer than '
                        f'--batch-size {args.batch_size}')
    if args.max_resolution < 0:
        raise UserError('--max-resolution must be >= 0')
    if args.data and not os.path.isdir(args.data):
        raise UserError(f'--data {args.data} is not a folder')
    return args


def run(args, workdir):
    info = machine_info()
    if args.data:
        src = args.data
        source = f'images from {args.data}'
    else:
        src = os.path.join(workdir, 'jpeg')
        t0 = time.perf_counter()
        n_photos = make_jpegs(src, args.samples)
        source = f'generated from {n_photos} package photos'
        print(f'made {args.samples} JPEGs from {n_photos} photos in '
              f'{time.perf_counter() - t0:.1f}s', flush=True)
    beton = os.path.join(workdir, 'data.beton')
    t0 = time.perf_counter()
    samples = build_beton(src, beton, args.max_resolution, args.workers)
    print(f'wrote {beton} ({len(samples)} samples) in {time.perf_counter() - t0:.1f}s',
          flush=True)
    methods = build_methods(beton, samples, args)
    # torchvision first: its workers fork before any Numba thread pool exists
    order = sorted(methods, key=lambda m: not m.key.startswith('e'))
    try:
        for m in order:
            t0 = time.perf_counter()
            m.epoch()
            print(f'warm-up {m.label}: {time.perf_counter() - t0:.1f}s', flush=True)
        for epoch in range(args.epochs):
            for m in order:
                m.timed_epoch()
            print(f'timed epoch {epoch + 1}/{args.epochs} done', flush=True)
    finally:
        for m in methods:
            m.close()
    ratios = ratio_rows(methods, RATIOS)
    config = {'samples': len(samples), 'data': source, 'resolution': args.resolution,
              'batch_size': args.batch_size, 'workers': args.workers, 'epochs': args.epochs,
              'torchvision_samples': min(len(samples), args.torchvision_samples or len(samples)),
              'max_resolution': args.max_resolution, 'jpeg_quality': JPEG_QUALITY,
              'quick': args.quick}
    print_report(info, config, methods, ratios)
    if args.json:
        result = {'machine': info, 'config': config,
                  'methods': {m.key: m.as_json() for m in methods},
                  'ratios': ratios}
        write_results(args.json, result)


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-bench-') as workdir:
        run(args, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main)
