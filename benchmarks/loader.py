"""Data-loading throughput: fastssl's decode-once pair loader against stock FFCV, torchvision
and the decode limit, and where a pair's time goes.

    python -m benchmarks.loader [--samples 1000] [--resolution 224] [--batch-size 64]
                                [--workers N] [--epochs 2] [--torchvision-samples N]
                                [--data DIR] [--max-resolution PX] [--profile-samples 256]
                                [--profile-passes 3] [--json OUT] [--quick]

One run, one machine, one JPEG ``.beton`` (and the same JPEG files for torchvision). Methods:

(a) fastssl ``MultiViewLoader``, crop+flip only: each JPEG decoded once, two views  (pairs/s)
(b) the same plus the full MoCo v2 CPU photometric augment (``PhotometricAugment``) (pairs/s)
(c) stock FFCV, two ``RandomResizedCropRGBImageDecoder`` + ``RandomHorizontalFlip`` pipelines
    over the one ``image`` field (the second output named ``image2``): decodes twice (pairs/s)
(d) stock FFCV, one such pipeline: a single view                                  (images/s)
(e) torchvision: an ImageFolder-style Dataset (PIL open + ``convert('RGB')``) with MoCo v2's
    ``TwoCropsTransform`` and a ``DataLoader``; crop+flip only, and the full augment  (pairs/s)
(f) the decode limit: an FFCV loader whose only op (``FullDecode``) runs FFCV's TurboJPEG
    ``imdecode`` on every stored JPEG at full size (no DCT scaling, no crop, no resize) into a
    per-sample buffer, parallel over the batch on the same threads, same order    (images/s)
(g) NVIDIA DALI's CPU pipeline over the same files, crop+flip and the full augment (pairs/s;
    ``benchmarks.dali_baseline``; an optional install: skipped with the reason when absent)

and the ratios the issues target: (a)/(c) >= 1.5, (a)/(d) >= 0.8, (a)/(e crop+flip) >= 3,
(b)/(e full) >= 5, (a)/(f) >= 0.65, (b)/(f) >= 0.45, and with DALI (a)/(g crop) >= 3 and
(b)/(g full) >= 10, each printed with PASS or MISS. A pair
costs one decode, so (a)/(f) is the share of the decode limit the pair loader reaches; where
(a) decodes less than the full image (DCT scaling when both crops allow it) it may pass 1, so
the report gives the decoded-pixel fraction of (a) next to it.

Then the profile of where a pair's time goes, per core (``benchmarks.loader_profile``).

Choices (all the same for every method unless said):

* Data: by default ``--samples`` JPEGs (quality 90, longest side 360-400 px) made from the real
  photographs shipped in scikit-image's ``skimage/data`` and scikit-learn's sample images (RGB
  or gray, shorter side >= 128; the synthetic ones - chessboards, phantom, colour wheel - are
  left out) by random crops, flips and rescales under a fixed seed, saved in an ImageFolder
  layout (one class per source photo) in a temporary folder, and written to a ``.beton`` with
  this project's ``writers.write_images`` (jpg mode, quality 90, ``--max-resolution`` 400, so
  FFCV stores the same pixels torchvision reads). ``--data DIR`` uses an existing image folder
  instead (``--max-resolution`` then defaults to 0, no cap); torchvision and DALI then read the
  ``.beton``'s stored JPEGs written out as files, as the user's files may be PNGs or larger
  than the cap. The torchvision Dataset reads exactly the images the ``.beton`` holds, in
  order.
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
* ``--quick`` is a smoke run for tests (64 samples, 64 px, batch 16, 1 timed epoch, 1 worker,
  a one-pass profile of 32 samples: with one thread FFCV compiles serial Numba code, which
  saves ~20 s of parallel compilation; explicit options still win). Its numbers mean nothing;
  it takes ~45-60 s on idle cores, nearly all of it imports and Numba compilation.

Numbers are only comparable within one run; other processes on the machine add noise (the
load average at the start is printed).
"""
import os
import statistics
import tempfile
import time
from dataclasses import replace

import numpy as np
from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import IMAGE_MODES, RandomResizedCropRGBImageDecoder
from ffcv.libffcv import imdecode
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.pipeline_spec import PipelineSpec
from ffcv.transforms import RandomHorizontalFlip, ToTensor

from benchmarks.batch_schedule import print_replay
from benchmarks.common import (
    Method,
    add_output_options,
    benchmark_parser,
    check_json_folder,
    check_max_resolution,
    check_view_resolution,
    machine_info,
    print_machine,
    print_ratios,
    print_table,
    ratio_rows,
    write_results,
)
from benchmarks.dali_baseline import DALI_RATIOS, dali_methods
from benchmarks.data import (
    CROP_SCALE,
    JPEG_QUALITY,
    SEED,
    add_jpeg_options,
    baseline_samples,
    build_beton,
    make_jpegs,
    resolve_jpeg_options,
)
from benchmarks.loader_profile import print_profile, run_profile
from benchmarks.torchvision_baseline import torchvision_loader
from fastssl_common.errors import UserError, run_cli
from fastssl_common.formats import IMAGE, LABEL
from loaders.kept_buffers import KeptBuffersLoader
from loaders.multiview_decoder import make_decode_costs
from loaders.pair_loader import MultiViewLoader, open_beton
from loaders.photometric_params import (
    make_strengths,
)
from loaders.work_sharing import claim_next, costliest_first, sharing_threads

QUICK = dict(samples=64, resolution=64, batch_size=16, epochs=1, workers=1, profile_samples=32,
             profile_passes=1)
DEFAULTS = dict(samples=1000, resolution=224, batch_size=64, epochs=2, profile_samples=256,
                profile_passes=3)

# (key, label, unit); the table lists them in this order
METHODS = [
    ('a', '(a) fastssl pair loader, crop+flip (decode once)', 'pairs/s'),
    ('b', '(b) fastssl pair loader, full MoCo v2 CPU augment', 'pairs/s'),
    ('c', '(c) stock FFCV, two pipelines (decode twice)', 'pairs/s'),
    ('d', '(d) stock FFCV, one view', 'images/s'),
    ('e_crop', '(e) torchvision DataLoader, crop+flip', 'pairs/s'),
    ('e_full', '(e) torchvision DataLoader, full MoCo v2 augment', 'pairs/s'),
    ('f', '(f) decode only: FFCV imdecode, full size, no crop', 'images/s'),
]
# (numerator, denominator, label, target)
RATIOS = [
    ('a', 'c', '(a)/(c)       decode-once vs stock FFCV decode-twice', 1.5),
    ('a', 'd', '(a)/(d)       pairs/s vs stock FFCV single-view images/s', 0.8),
    ('a', 'e_crop', '(a)/(e crop)  crop+flip vs torchvision crop+flip', 3.0),
    ('b', 'e_full', '(b)/(e full)  full augment vs torchvision full augment', 5.0),
    ('a', 'f', '(a)/(f)       crop+flip pairs/s vs full-size decode images/s', 0.65),
    ('b', 'f', '(b)/(f)       full augment pairs/s vs full-size decode images/s', 0.45),
]


# ---------------------------------------------------------------------------- methods

def fastssl_loader(path, args, augment):
    return MultiViewLoader(path, args.batch_size, args.resolution,
                           num_workers=args.workers, seed=SEED, order='random', scale=CROP_SCALE,
                           cpu_photometric=make_strengths() if augment else None,
                           drop_last=True)


def stock_ffcv_loader(path, args, n_views):
    """Stock FFCV: ``n_views`` crop+flip pipelines over the one 'image' field."""
    def view():
        return PipelineSpec(IMAGE, decoder=RandomResizedCropRGBImageDecoder(
            (args.resolution, args.resolution), scale=CROP_SCALE),
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


class FullDecode(Operation):
    """Method (f), the decode limit: FFCV's TurboJPEG ``imdecode`` of every stored JPEG at full
    size (no DCT scaling, no crop) into a per-sample buffer, parallel over the batch with the
    samples shared among the threads, costliest first, as in (a) and (b)
    (``loaders.work_sharing``). It outputs imdecode's status per sample, so nothing but the
    decode is paid."""

    def declare_state_and_memory(self, previous_state):
        max_h = np.uint64(self.metadata['height'].max())
        max_w = np.uint64(self.metadata['width'].max())
        return (replace(previous_state, jit_mode=True, shape=(), dtype=np.dtype('<i4')),
                (AllocationQuery((), np.dtype('<i4')),
                 AllocationQuery((max_h * max_w * np.uint64(3),), np.dtype('<u1'))))

    def generate_code(self):
        jpg = IMAGE_MODES['jpg']
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        decode_costs = make_decode_costs(mem_read)

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, decoded = my_storage
            count = len(batch_indices)
            order = costliest_first(decode_costs(batch_indices, metadata, storage_state))
            claimed = np.zeros(1, np.int64)
            for _ in my_range(sharing_threads(count)):
                while True:
                    dst_ix = claim_next(order, claimed)
                    if dst_ix < 0:
                        break
                    field = metadata[batch_indices[dst_ix]]
                    data = mem_read(field['data_ptr'], storage_state)
                    height = np.uint32(field['height'])
                    width = np.uint32(field['width'])
                    status = -1
                    if field['mode'] == jpg:
                        status = imdecode_c(data, decoded[dst_ix], height, width, height,
                                            width, 0, 0, 1, 1, False, False)
                    destination[dst_ix] = status
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode


def decode_only_loader(path, args):
    """Method (f): the FFCV loader of (a) and (b) (threads, order, batches, buffers kept
    across epochs) with ``FullDecode`` as its only pipeline."""
    pipelines = {name: None for name in open_beton(path).handlers}
    pipelines[IMAGE] = PipelineSpec(IMAGE, decoder=FullDecode(), transforms=[ToTensor()])
    return KeptBuffersLoader(path, batch_size=args.batch_size, num_workers=args.workers,
                             order=OrderOption.RANDOM, seed=SEED, pipelines=pipelines,
                             drop_last=True, os_cache=True, batches_ahead=3)


class CpuMethod(Method):
    """A ``Method`` that also records the process's CPU seconds (all threads) per timed epoch:
    an FFCV loader runs in this process, so that is its core time, which other processes on a
    shared machine do not stretch the way they stretch the wall clock."""

    def __init__(self, *args):
        super().__init__(*args)
        self.cpu_seconds, self.counts = [], []

    def timed_epoch(self):
        start = time.process_time()
        count, seconds = self.epoch()
        self.cpu_seconds.append(time.process_time() - start)
        self.counts.append(count)
        self.add(count, seconds)

    @property
    def cpu_ms(self):
        """Median CPU milliseconds per sample (pair, or image for (d) and (f))."""
        return statistics.median(1e3 * c / n for c, n in zip(self.cpu_seconds, self.counts))

    def as_json(self):
        return {**super().as_json(), 'epoch_cpu_seconds': self.cpu_seconds,
                'cpu_ms_per_sample': self.cpu_ms}


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
        'e_crop': (lambda: torchvision_loader(tv_samples, args, False, CROP_SCALE, SEED), tv_pairs),
        'e_full': (lambda: torchvision_loader(tv_samples, args, True, CROP_SCALE, SEED), tv_pairs),
        'f': (lambda: decode_only_loader(beton, args), ffcv_pairs),
    }
    return [(Method if key.startswith('e') else CpuMethod)(key, *units[key], *makers[key])
            for key, _, _ in METHODS]


# ---------------------------------------------------------------------------- report

def loader_ms(methods, workers):
    """Each FFCV method's core milliseconds per pair (per image for (d), (f)): ``cpu``, the
    process's CPU time per sample, and ``wall``, ``workers`` threads over the median rate
    (which also counts the time other processes took the cores)."""
    return {m.key: {'cpu': m.cpu_ms, 'wall': 1e3 * workers / m.median}
            for m in methods if isinstance(m, CpuMethod)}


def print_report(info, config, methods, ratios, profile):
    print()
    print_machine(info)
    print(f"config: {config['samples']} samples ({config['data']}), resolution "
          f"{config['resolution']}, batch {config['batch_size']}, {config['workers']} workers, "
          f"{config['epochs']} timed epoch(s) after 1 warm-up; torchvision on "
          f"{config['torchvision_samples']} samples")
    print()
    print_table(methods)
    print()
    print_ratios(ratios, target_format='.2f')
    print()
    print_profile(profile, loader_ms(methods, config['workers']), config['workers'])
    print()
    print_replay(profile['batch_split'], config['batch_size'])


# ---------------------------------------------------------------------------- main

def build_parser():
    parser = benchmark_parser(
        'loader', 'Loader throughput: fastssl pair loader vs stock FFCV vs torchvision, on one '
        'JPEG .beton (see the module docstring for the choices).')
    add_jpeg_options(parser, DEFAULTS, 'FFCV threads and DataLoader worker processes')
    parser.add_argument('--torchvision-samples', type=int, default=None,
                        help='run the torchvision methods on the first N samples only '
                        '(default: all)')
    parser.add_argument('--profile-samples', type=int, default=None,
                        help=f"stored JPEGs the per-stage profile runs over (default "
                        f"{DEFAULTS['profile_samples']})")
    parser.add_argument('--profile-passes', type=int, default=None,
                        help=f"profile passes, the median is reported (default "
                        f"{DEFAULTS['profile_passes']})")
    add_output_options(parser, 'smoke run for tests: 64 samples, 64 px, batch 16, 1 epoch, '
                       '1 worker, profile of 32 samples')
    return parser


def resolve(args):
    resolve_jpeg_options(args, QUICK if args.quick else DEFAULTS,
                         counts=('profile_samples', 'profile_passes'))
    check_view_resolution(args)
    check_max_resolution(args)
    if args.torchvision_samples is not None and args.torchvision_samples < 1:
        raise UserError('--torchvision-samples must be at least 1')
    if args.torchvision_samples is not None and args.torchvision_samples < args.batch_size:
        raise UserError(f'--torchvision-samples {args.torchvision_samples} is fewer than '
                        f'--batch-size {args.batch_size}')
    check_json_folder(args.json)
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
    samples = baseline_samples(args, beton, samples, workdir)
    methods = build_methods(beton, samples, args) + dali_methods(samples, args)
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
    t0 = time.perf_counter()
    profile = run_profile(beton, args, args.profile_samples, args.profile_passes)
    print(f'profile: {time.perf_counter() - t0:.1f}s', flush=True)
    with_dali = any(m.key.startswith('g') for m in methods)
    ratios = ratio_rows(methods, RATIOS + (DALI_RATIOS if with_dali else []))
    config = {'samples': len(samples), 'data': source, 'resolution': args.resolution,
              'batch_size': args.batch_size, 'workers': args.workers, 'epochs': args.epochs,
              'torchvision_samples': min(len(samples), args.torchvision_samples or len(samples)),
              'max_resolution': args.max_resolution, 'jpeg_quality': JPEG_QUALITY,
              'quick': args.quick}
    print_report(info, config, methods, ratios, profile)
    if args.json:
        result = {'machine': info, 'config': config,
                  'methods': {m.key: m.as_json() for m in methods},
                  'ratios': ratios,
                  'profile': {**profile, 'loader_ms': loader_ms(methods, args.workers)}}
        write_results(args.json, result)


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-bench-') as workdir:
        run(args, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
