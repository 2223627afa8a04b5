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

The profile then says where a pair's time goes, per core: each stage (crop draw, the decode
as (a) does it, each view's resize + flip, each view's photometric augment, and the full-size
decode of (f)) runs alone over the first ``--profile-samples`` stored JPEGs in chunks of 16,
timed in thread CPU time on one core, median of ``--profile-passes`` passes; against it stands
the loader's own CPU time per pair (process CPU time over the timed epochs: every thread of
the FFCV methods, which run in this process). The difference is loader overhead (FFCV's
batching, thread hand-offs, cache misses of the real interleaving); collation costs nothing
(the op writes the views into FFCV's batch buffer, ``ToTensor`` wraps it); where the stages
alone come to more than the loader, the machine slowed down during the profile and a note says
that run's shares are not reliable. CPU time, because
other processes on a shared machine stretch the wall clock, not the cycles a stage needs; the
wall-clock cost (threads / rate) is printed next to it. Last, the resize's quality: PSNR of
our views against torchvision's antialiased ``resized_crop`` (+ flip) of the same boxes of the
same full-size decode, over 32 views (target >= 50 dB). And the price of a batch's split among
the threads at 2, 8 and 16 threads, replayed from each profiled sample's own stage times
(``benchmarks.batch_schedule``): Numba's fixed split against the loaders' costliest-first
sharing (``loaders.work_sharing``), which a 2-core run cannot measure at 16 threads.

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
* ``--quick`` is a smoke run for tests (64 samples, 64 px, batch 16, 1 timed epoch, 1 worker,
  a one-pass profile of 32 samples: with one thread FFCV compiles serial Numba code, which
  saves ~20 s of parallel compilation; explicit options still win). Its numbers mean nothing;
  it takes ~45-60 s on idle cores, nearly all of it imports and Numba compilation.

Numbers are only comparable within one run; other processes on the machine add noise (the
load average at the start is printed).
"""
import math
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
from ffcv.reader import Reader
from ffcv.transforms import RandomHorizontalFlip, ToTensor
from numba import njit

from benchmarks.batch_schedule import print_replay, replay
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
    JPEG_QUALITY,
    SEED,
    add_jpeg_options,
    build_beton,
    make_jpegs,
    resolve_jpeg_options,
)
from benchmarks.torchvision_baseline import torchvision_loader
from fastssl_common.errors import UserError, run_cli
from fastssl_common.formats import IMAGE, LABEL
from loaders.kept_buffers import KeptBuffersLoader
from loaders.multiview_decoder import dct_denominator, draw_views, make_decode_costs
from loaders.pair_loader import MultiViewLoader, open_beton
from loaders.photometric_kernels import aligned_image, augment_view, estimated_cost
from loaders.photometric_params import (
    NUM_PARAMS,
    blur_kernel_size,
    draw_sample_params,
    make_strengths,
    photometric_params,
)
from loaders.resize import resize_view
from loaders.work_sharing import claim_next, costliest_first, sharing_threads

SCALE = (0.2, 1.0)
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
        'e_crop': (lambda: torchvision_loader(tv_samples, args, False, SCALE, SEED), tv_pairs),
        'e_full': (lambda: torchvision_loader(tv_samples, args, True, SCALE, SEED), tv_pairs),
        'f': (lambda: decode_only_loader(beton, args), ffcv_pairs),
    }
    return [(Method if key.startswith('e') else CpuMethod)(key, *units[key], *makers[key])
            for key, _, _ in METHODS]


# ---------------------------------------------------------------------------- profile

PROFILE_CHUNK = 16     # samples per stage call: decoded buffers of a chunk stay small
PROFILE_EPOCH = 1      # whose draws the profile replays (any epoch has the same statistics)
SPLIT_TRIALS = 500     # batches replayed per thread count (benchmarks.batch_schedule)
SPLIT_TRIALS_QUICK = 10
PSNR_VIEWS = 32        # views compared against torchvision for the quality figure
PSNR_CAP = 100.0       # dB reported for a view identical to torchvision's
imdecode_nb = njit(imdecode)


def stored_jpegs(path, limit):
    """(bytes, height, width) of the first ``limit`` samples' stored JPEGs, read straight from
    the .beton through FFCV's metadata and allocation table (what the loaders decode)."""
    reader = Reader(path)
    meta = reader.metadata[f'f{list(reader.handlers).index(IMAGE)}']
    sizes = dict(zip(reader.alloc_table['ptr'].tolist(), reader.alloc_table['size'].tolist()))
    jpg = IMAGE_MODES['jpg']
    out = []
    with open(path, 'rb') as handle:
        for index in range(len(meta)):
            row = meta[index]
            if row['mode'] != jpg:
                continue
            handle.seek(int(row['data_ptr']))
            data = np.frombuffer(handle.read(sizes[int(row['data_ptr'])]), np.uint8)
            out.append((index, data, int(row['height']), int(row['width'])))
            if len(out) == limit:
                break
    return out


@njit
def _draw_stage(seed, epoch, indices, heights, widths, resolution, scale_min, scale_max,
                log_ratio_min, log_ratio_max, boxes, flips, denominators):
    for i in range(indices.shape[0]):
        draw_views(seed, epoch, indices[i], 0, 0, 0, heights[i], widths[i], scale_min,
                   scale_max, log_ratio_min, log_ratio_max, 0.5, boxes[i], flips[i])
        denominators[i] = dct_denominator(boxes[i], resolution, resolution, True)


@njit  # no cache: it calls TurboJPEG through a ctypes address
def _decode_stage(jpegs, jpeg_starts, heights, widths, denominators, decoded, decoded_starts):
    for i in range(heights.shape[0]):
        data = jpegs[jpeg_starts[i]:jpeg_starts[i + 1]]
        imdecode_nb(data, decoded[decoded_starts[i]:], heights[i], widths[i], heights[i],
                    widths[i], 0, 0, 1, denominators[i], False, False)


@njit
def _decoded_image(decoded, decoded_starts, heights, widths, denominators, i):
    d = denominators[i]
    dec_h = (heights[i] + d - 1) // d
    dec_w = (widths[i] + d - 1) // d
    return decoded[decoded_starts[i]:decoded_starts[i] + 3 * dec_h * dec_w].reshape(
        dec_h, dec_w, 3), d


@njit
def _resize_stage(decoded, decoded_starts, heights, widths, denominators, boxes, flips, view,
                  views):
    for i in range(heights.shape[0]):
        image, d = _decoded_image(decoded, decoded_starts, heights, widths, denominators, i)
        resize_view(image, boxes[i, view, 0] / d, boxes[i, view, 1] / d,
                    boxes[i, view, 2] / d, boxes[i, view, 3] / d, flips[i, view],
                    views[i, view])


@njit
def _photometric_stage(seed, epoch, indices, strengths, ksize, view, views):
    """As ``PhotometricAugment`` does per sample: draw the view's parameters, float scratch,
    augment in place."""
    view_ids = np.array([view], np.int64)
    height, width = views.shape[2], views.shape[3]
    for i in range(indices.shape[0]):
        params = np.empty((1, NUM_PARAMS), np.float64)
        draw_sample_params(seed, epoch, indices[i], view_ids, strengths, params)
        buf = aligned_image(height, width)
        scratch = aligned_image(height, width)
        augment_view(views[i, view], params[0], ksize, buf, scratch)


def draw_boxes(jpegs, resolution, epoch=PROFILE_EPOCH):
    """Each sample's two views (boxes, flips) and the DCT denominator (a)'s op would use."""
    n = len(jpegs)
    boxes = np.empty((n, 2, 4), np.int64)
    flips = np.empty((n, 2), np.bool_)
    denominators = np.empty(n, np.int64)
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    _draw_stage(SEED, epoch, np.array([j[0] for j in jpegs], np.int64),
                np.array([j[2] for j in jpegs], np.int64),
                np.array([j[3] for j in jpegs], np.int64), resolution, SCALE[0], SCALE[1],
                log_ratio[0], log_ratio[1], boxes, flips, denominators)
    return boxes, flips, denominators


class Chunk:
    """One chunk of samples, packed for the stage functions."""

    def __init__(self, jpegs, resolution):
        self.indices = np.array([j[0] for j in jpegs], np.int64)
        self.heights = np.array([j[2] for j in jpegs], np.int64)
        self.widths = np.array([j[3] for j in jpegs], np.int64)
        self.jpeg_starts = np.concatenate([[0], np.cumsum([len(j[1]) for j in jpegs])])
        self.jpegs = np.concatenate([j[1] for j in jpegs])
        self.decoded_starts = np.concatenate([[0], np.cumsum(3 * self.heights * self.widths)])
        self.decoded = np.empty(self.decoded_starts[-1], np.uint8)
        self.views = np.empty((len(jpegs), 2, resolution, resolution, 3), np.uint8)
        self.boxes = np.empty((len(jpegs), 2, 4), np.int64)
        self.flips = np.empty((len(jpegs), 2), np.bool_)
        self.denominators = np.empty(len(jpegs), np.int64)
        self.full = np.ones(len(jpegs), np.int64)


PROFILE_STAGES = [
    # (key, label, methods whose pair it is part of)
    ('draw', 'draw 2 crop boxes + flips + DCT scale', 'ab'),
    ('decode', 'JPEG decode as (a) does (DCT-scaled when allowed)', 'ab'),
    ('resize0', 'antialiased resize + flip, view 0', 'ab'),
    ('resize1', 'antialiased resize + flip, view 1', 'ab'),
    ('photo0', 'photometric augment, view 0', 'b'),
    ('photo1', 'photometric augment, view 1', 'b'),
    ('decode_full', 'JPEG decode at full size (the work of (f))', 'f'),
]


def profile_stages(chunks, resolution, strengths, ksize, passes):
    """CPU seconds per stage over all chunks, each stage timed on its own on this thread (one
    core), median of ``passes`` passes; the stages run in pipeline order on each chunk.
    Thread CPU time rather than wall time: other processes on a shared machine stretch the
    wall clock, not the cycles a stage needs."""
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    totals = {key: [] for key, _, _ in PROFILE_STAGES}
    for _ in range(passes):
        spent = dict.fromkeys(totals, 0.0)
        for c in chunks:
            steps = [
                ('decode_full', lambda: _decode_stage(c.jpegs, c.jpeg_starts, c.heights,
                                                      c.widths, c.full, c.decoded,
                                                      c.decoded_starts)),
                ('draw', lambda: _draw_stage(SEED, PROFILE_EPOCH, c.indices, c.heights,
                                             c.widths, resolution, SCALE[0], SCALE[1],
                                             log_ratio[0], log_ratio[1], c.boxes, c.flips,
                                             c.denominators)),
                ('decode', lambda: _decode_stage(c.jpegs, c.jpeg_starts, c.heights, c.widths,
                                                 c.denominators, c.decoded, c.decoded_starts)),
            ]
            for view in (0, 1):
                steps.append((f'resize{view}', lambda view=view: _resize_stage(
                    c.decoded, c.decoded_starts, c.heights, c.widths, c.denominators, c.boxes,
                    c.flips, view, c.views)))
            for view in (0, 1):
                steps.append((f'photo{view}', lambda view=view: _photometric_stage(
                    SEED, PROFILE_EPOCH, c.indices, strengths, ksize, view, c.views)))
            for key, step in steps:
                t0 = time.thread_time()
                step()
                spent[key] += time.thread_time() - t0
        for key in totals:
            totals[key].append(spent[key])
    return {key: statistics.median(values) for key, values in totals.items()}


def resize_quality(jpegs, resolution, count=PSNR_VIEWS):
    """PSNR (dB) of our resize + flip against torchvision's antialiased ``resized_crop`` (+
    flip) of the same box of the same full-size decode, rounded to uint8: min and median over
    the first ``count`` views. Full size, because a DCT-scaled decode has no integer box to
    hand torchvision; the resize is the same code either way."""
    import torch
    import torchvision.transforms.v2.functional as F

    c = Chunk(jpegs[:(count + 1) // 2], resolution)
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    _draw_stage(SEED, PROFILE_EPOCH, c.indices, c.heights, c.widths, resolution, SCALE[0],
                SCALE[1], log_ratio[0], log_ratio[1], c.boxes, c.flips, c.denominators)
    _decode_stage(c.jpegs, c.jpeg_starts, c.heights, c.widths, c.full, c.decoded,
                  c.decoded_starts)
    values = []
    for view in (0, 1):
        _resize_stage(c.decoded, c.decoded_starts, c.heights, c.widths, c.full, c.boxes,
                      c.flips, view, c.views)
    for i in range(len(c.indices)):
        image, _ = _decoded_image(c.decoded, c.decoded_starts, c.heights, c.widths, c.full, i)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        for view in (0, 1):
            top, left, h, w = (int(x) for x in c.boxes[i, view])
            ref = F.resized_crop(tensor, top, left, h, w, [resolution, resolution],
                                 antialias=True)
            if c.flips[i, view]:
                ref = F.horizontal_flip(ref)
            ref = ref.round().clamp(0, 255).permute(1, 2, 0).numpy()
            mse = np.mean((c.views[i, view].astype(np.float64) - ref) ** 2)
            # identical views (mse 0) count as PSNR_CAP
            values.append(min(PSNR_CAP, 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))))
    return {'min': min(values), 'median': statistics.median(values), 'views': len(values)}


def decoded_fraction(path, resolution):
    """Pixels (a) decodes over the pixels of the stored images, over one epoch of the whole
    .beton: below 1 where every crop of a sample allows a DCT-scaled decode."""
    jpegs = stored_jpegs(path, None)
    _, _, denominators = draw_boxes(jpegs, resolution)
    full = np.array([j[2] * j[3] for j in jpegs], np.float64)
    dec_h = -(-np.array([j[2] for j in jpegs]) // denominators)
    dec_w = -(-np.array([j[3] for j in jpegs]) // denominators)
    return float((dec_h * dec_w).sum() / full.sum()), float(np.mean(denominators > 1))


def run_profile(path, args, limit, passes):
    """The per-stage profile of one pair (see ``print_profile``) and the resize quality."""
    jpegs = stored_jpegs(path, limit)
    chunks = [Chunk(jpegs[k:k + PROFILE_CHUNK], args.resolution)
              for k in range(0, len(jpegs), PROFILE_CHUNK)]
    ksize = blur_kernel_size(args.resolution, args.resolution)
    strengths = make_strengths()
    profile_stages(chunks[:1], args.resolution, strengths, ksize, 1)   # compile
    seconds = profile_stages(chunks, args.resolution, strengths, ksize, passes)
    fraction, scaled = decoded_fraction(path, args.resolution)
    quality = resize_quality(jpegs, args.resolution)
    loops = split_loops(jpegs, args.resolution, strengths, ksize, passes)
    split = replay(loops, sorted({max(2, args.workers), 8, 16}), args.batch_size,
                   SPLIT_TRIALS_QUICK if args.quick else SPLIT_TRIALS)
    return {'samples': len(jpegs), 'passes': passes,
            'ms_per_pair': {key: 1e3 * s / len(jpegs) for key, s in seconds.items()},
            'decoded_pixel_fraction': fraction, 'dct_scaled_samples': scaled,
            'resize_psnr_db': quality, 'batch_split': split}


def split_loops(jpegs, resolution, strengths, ksize, passes):
    """Each sample's CPU seconds in the loops of (a), (b) and (f), from the profile's stages
    timed on that sample alone, with the keys the loaders take samples by (for
    ``benchmarks.batch_schedule``): the decoder's loop (the stored JPEG's size), the
    photometric op's (its estimated cost), (f)'s full-size decode (the size)."""
    # a second pass over the stages, one sample per call: the stage profile above times chunks
    # of PROFILE_CHUNK so that a call's own overhead is spread, but a split needs each
    # sample's time
    per_sample = [profile_stages([Chunk([j], resolution)], resolution, strengths, ksize, passes)
                  for j in jpegs]
    times = {key: np.array([p[key] for p in per_sample]) for key, _, _ in PROFILE_STAGES}
    sizes = np.array([len(j[1]) for j in jpegs], np.float64)
    params = photometric_params(SEED, PROFILE_EPOCH, np.array([j[0] for j in jpegs], np.int64),
                                2, strengths)
    photometric_keys = np.array([sum(estimated_cost(views[v], ksize) for v in range(2))
                                 for views in params])
    crop = times['draw'] + times['decode'] + times['resize0'] + times['resize1']
    photometric = times['photo0'] + times['photo1']
    return {'(a)': [(crop, sizes)], '(b)': [(crop, sizes), (photometric, photometric_keys)],
            '(f)': [(times['decode_full'], sizes)]}


def loader_ms(methods, workers):
    """Each FFCV method's core milliseconds per pair (per image for (d), (f)): ``cpu``, the
    process's CPU time per sample, and ``wall``, ``workers`` threads over the median rate
    (which also counts the time other processes took the cores)."""
    return {m.key: {'cpu': m.cpu_ms, 'wall': 1e3 * workers / m.median}
            for m in methods if isinstance(m, CpuMethod)}


def print_profile(profile, loader, workers):
    stages = profile['ms_per_pair']
    labels = {key: label for key, label, _ in PROFILE_STAGES}
    core_ms = {key: value['cpu'] for key, value in loader.items()}
    print(f"where a pair's time goes, per core: each stage's CPU time alone on one core over "
          f"{profile['samples']} stored JPEGs (median of {profile['passes']} passes), against "
          f"the loader's CPU time per pair (all its threads, median over timed epochs)")
    width = max(len(label) for label in labels.values()) + 2
    print(f"{'stage':<{width}}  {'ms':>6}  {'of (a)':>6}  {'of (b)':>6}")
    for key, label, used in PROFILE_STAGES[:-1]:
        shares = [f'{100 * stages[key] / core_ms[m]:5.1f}%' if m in used else '     -'
                  for m in 'ab']
        print(f'{label:<{width}}  {stages[key]:6.3f}  {shares[0]}  {shares[1]}')
    print(f"{'collation / copy':<{width}}  {0:6.3f}  (none: views are written in place into "
          "FFCV's batch buffer, ToTensor wraps it)")
    below = []
    for method in 'ab':
        spent = sum(stages[key] for key, _, used in PROFILE_STAGES if method in used)
        rest = core_ms[method] - spent
        print(f"{f'loader overhead ({method})':<{width}}  {rest:6.3f}  "
              f'{100 * rest / core_ms[method]:5.1f}%  (FFCV batching, thread hand-offs, '
              'cache misses)')
        if rest < 0:
            below.append(f'({method}) by {-rest:.3f} ms')
    for method in 'ab':
        print(f"{f'({method}) CPU time per pair':<{width}}  {core_ms[method]:6.3f}  "
              f"(wall: {workers} threads / rate = {loader[method]['wall']:.3f})")
    rest = core_ms['f'] - stages['decode_full']
    print(f"{labels['decode_full']:<{width}}  {stages['decode_full']:6.3f}  (f) CPU time per "
          f"image {core_ms['f']:.3f}, of which loader overhead {rest:.3f}")
    if rest < 0:
        below.append(f'(f) by {-rest:.3f} ms')
    if below:
        # a stage costs the same alone as inside the loader, unless the machine slowed down
        print('note: the stages alone took more CPU time than the loader itself '
              f"({', '.join(below)}): the machine ran slower while they were profiled than "
              "during the timed epochs, so this run's shares and overheads are not reliable "
              '(rerun on a quiet machine)')
    print(f"decoded-pixel fraction of (a): {profile['decoded_pixel_fraction']:.3f} of the "
          f"stored pixels ({100 * profile['dct_scaled_samples']:.1f}% of samples DCT-scaled)")
    quality = profile['resize_psnr_db']
    print(f"resize quality: PSNR vs torchvision antialiased resized_crop of a full-size decode, "
          f"min {quality['min']:.1f} dB, median {quality['median']:.1f} dB over "
          f"{quality['views']} views (target >= 50 dB; identical = {PSNR_CAP:.0f} dB), at "
          f"{stages['resize0'] + stages['resize1']:.3f} ms per pair")


# ---------------------------------------------------------------------------- report

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
    methods = build_methods(beton, samples, args) + dali_methods(samples, args, SCALE, SEED)
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
