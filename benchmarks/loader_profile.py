"""Where a pair's time goes, per core: the profile ``benchmarks.loader`` prints after its ratios.

Each stage (crop draw, the decode as (a) does it, each view's resize + flip, each view's
photometric augment, and the full-size decode of (f)) runs alone over the first ``--profile-
samples`` stored JPEGs in chunks of 16, timed in thread CPU time on one core, median of
``--profile-passes`` passes; against it stands the loader's own CPU time per pair (process CPU
time over the timed epochs: every thread of the FFCV methods, which run in this process). The
difference is loader overhead (FFCV's batching, thread hand-offs, cache misses of the real
interleaving); collation costs nothing (the op writes the views into FFCV's batch buffer,
``ToTensor`` wraps it); where the stages alone come to more than the loader, the machine slowed
down during the profile and a note says that run's shares are not reliable. CPU time, because
other processes on a shared machine stretch the wall clock, not the cycles a stage needs; the
wall-clock cost (threads / rate) is printed next to it. Last, the resize's quality: PSNR of our
views against torchvision's antialiased ``resized_crop`` (+ flip) of the same boxes of the same
full-size decode, over 32 views (target >= 50 dB). And the price of a batch's split among the
threads at 2, 8 and 16 threads, replayed from each profiled sample's own stage times
(``benchmarks.batch_schedule``): Numba's fixed split against the loaders' costliest-first
sharing (``loaders.work_sharing``), which a 2-core run cannot measure at 16 threads.
"""
import math
import statistics
import time

import numpy as np
from ffcv.libffcv import imdecode
from numba import njit

from benchmarks.batch_schedule import replay
from benchmarks.data import CROP_SCALE, SEED, stored_jpegs
from loaders.multiview_decoder import dct_denominator, draw_views
from loaders.photometric_kernels import aligned_image, augment_view, estimated_cost
from loaders.photometric_params import (
    NUM_PARAMS,
    blur_kernel_size,
    draw_sample_params,
    make_strengths,
    photometric_params,
)
from loaders.resize import resize_view

PROFILE_CHUNK = 16     # samples per stage call: decoded buffers of a chunk stay small
PROFILE_EPOCH = 1      # whose draws the profile replays (any epoch has the same statistics)
SPLIT_TRIALS = 500     # batches replayed per thread count (benchmarks.batch_schedule)
SPLIT_TRIALS_QUICK = 10
PSNR_VIEWS = 32        # views compared against torchvision for the quality figure
PSNR_CAP = 100.0       # dB reported for a view identical to torchvision's
imdecode_nb = njit(imdecode)


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
                np.array([j[3] for j in jpegs], np.int64), resolution, CROP_SCALE[0], CROP_SCALE[1],
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
                                             c.widths, resolution, CROP_SCALE[0], CROP_SCALE[1],
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
    _draw_stage(SEED, PROFILE_EPOCH, c.indices, c.heights, c.widths, resolution, CROP_SCALE[0],
                CROP_SCALE[1], log_ratio[0], log_ratio[1], c.boxes, c.flips, c.denominators)
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
