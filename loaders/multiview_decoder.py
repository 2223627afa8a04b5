"""Decode-once, N-view FFCV decoder: the heart of the pair loader.

Stock FFCV gives two views of one image only through two pipelines over one field, which
decodes the JPEG twice. This decoder decodes each stored JPEG exactly once per sample and
renders ``n_views`` independent RandomResizedCrop + horizontal-flip views from that one
buffer. Output per sample: ``(n_views, H, W, 3)`` uint8.

Why it is fast, not only decode-once (see docs/design.md: the resize costs as much as the
decode):
- the resize is our Numba antialiased bilinear with the flip fused in (``resize.py``), about
  half the cost of FFCV's INTER_AREA ``resize_crop`` and closer to torchvision's output, its
  two passes run in the cheaper order for each view's box;
- when every view's crop is at least 2x (4x, 8x) the output size, TurboJPEG decodes at 1/2
  (1/4, 1/8) scale via DCT scaling and the boxes are scaled to match.

Randomness is counter-based (``rng.py``): view boxes and flips are a pure function of
(seed, epoch, sample index), independent of the worker count.

Box-conditioned crops: crops are drawn inside a *region* of the image; here the region is
the whole image, and ``draw_views`` takes the region explicitly. A region-conditioned decoder
(``region_crop.py``: tracked boxes) subclasses this op and overrides ``make_view_drawer``,
which chooses each view's box; the decode and the resize stay here.
"""
import math
from dataclasses import replace

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.libffcv import imdecode
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation

from .crops import sample_resized_crop
from .decode_failures import DecodeFailures
from .epoch import EpochCell
from .jit import jit
from .resize import resize_view
from .rng import STREAM_CROP, next_uniform, view_state
from .work_sharing import claim_next, costliest_first, sharing_threads

DCT_DENOMINATORS = (8, 4, 2)  # TurboJPEG's exact power-of-two scale factors


@jit(cache=True)
def draw_views(seed, epoch, index, first_view, region_top, region_left, region_h, region_w,
               scale_min, scale_max, log_ratio_min, log_ratio_max, flip_prob, boxes, flips):
    """Draw crop box (top, left, h, w) and flip of views first_view, first_view + 1, ... of
    sample ``index`` (one row of ``boxes`` per view).

    Each view has its own sequence, so view v is the same whichever op renders it. The state
    is made inside this function so that the uint64 never crosses into Python (where it would
    be an int too wide for int64)."""
    for v in range(boxes.shape[0]):
        state = view_state(seed, epoch, index, STREAM_CROP, first_view + v)
        state, top, left, h, w = sample_resized_crop(
            state, region_h, region_w, scale_min, scale_max, log_ratio_min, log_ratio_max)
        state, u = next_uniform(state)
        boxes[v, 0] = region_top + top
        boxes[v, 1] = region_left + left
        boxes[v, 2] = h
        boxes[v, 3] = w
        flips[v] = u < flip_prob


@jit(cache=True)
def dct_denominator(boxes, out_h, out_w, enabled):
    """Largest 1/d decode scale that keeps every crop at least the output size (no upscaling)."""
    if not enabled:
        return 1
    for d in DCT_DENOMINATORS:
        ok = True
        for v in range(boxes.shape[0]):
            if boxes[v, 2] < d * out_h or boxes[v, 3] < d * out_w:
                ok = False
        if ok:
            return d
    return 1


class MultiViewRandomResizedCrop(Operation):
    """FFCV decoder for ``RGBImageField``: one decode, ``n_views`` RandomResizedCrop+flip views.

    Parameters mirror torchvision's ``RandomResizedCrop(size, scale, ratio)`` followed by
    ``RandomHorizontalFlip(flip_prob)``; ``seed`` and ``epoch_cell`` key the per-sample
    randomness; ``first_view`` numbers this op's views within the sample (a video pair's
    frame b renders view 1 while frame a renders view 0); ``dct_scaling`` allows TurboJPEG's
    reduced-size decode when it loses nothing; ``failures`` (a
    :class:`loaders.decode_failures.DecodeFailures`, shared by a loader's decoders) counts
    the images that do not decode, whose views come out black.
    """

    def __init__(self, output_size, n_views=2, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                 flip_prob=0.5, seed=0, epoch_cell=None, dct_scaling=True, first_view=0,
                 failures=None):
        super().__init__()
        self.first_view = int(first_view)
        self.output_size = tuple(int(s) for s in output_size)
        self.n_views = int(n_views)
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)
        self.epoch_cell = epoch_cell if epoch_cell is not None else EpochCell()
        self.dct_scaling = bool(dct_scaling)
        self.failures = failures if failures is not None else DecodeFailures()

    def declare_state_and_memory(self, previous_state):
        max_h = np.uint64(self.metadata['height'].max())
        max_w = np.uint64(self.metadata['width'].max())
        out_h, out_w = self.output_size
        output_shape = (self.n_views, out_h, out_w, 3)
        return (
            replace(previous_state, jit_mode=True, shape=output_shape, dtype=np.dtype('<u1')),
            (AllocationQuery(output_shape, np.dtype('<u1')),
             AllocationQuery((max_h * max_w * np.uint64(3),), np.dtype('<u1'))),
        )

    def make_view_drawer(self):
        """Python source of the Numba-compiled ``draw(index, epoch, height, width,
        storage_state, boxes, flips)``: fill the crop box (top, left, h, w) in stored-image
        pixels and the flip of each of this op's views of sample ``index``."""
        seed = self.seed
        first_view = self.first_view
        scale_min, scale_max = self.scale
        log_ratio_min, log_ratio_max = self.log_ratio
        flip_prob = self.flip_prob

        def draw(index, epoch, height, width, storage_state, boxes, flips):
            draw_views(seed, epoch, index, first_view, 0, 0, height, width, scale_min,
                       scale_max, log_ratio_min, log_ratio_max, flip_prob, boxes, flips)
        return draw

    @property
    def log_ratio(self):
        return math.log(self.ratio[0]), math.log(self.ratio[1])

    def generate_code(self):
        jpg = IMAGE_MODES['jpg']
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        read_epoch = Compiler.compile(self.epoch_cell.make_reader())
        draw = Compiler.compile(self.make_view_drawer())
        decode_costs = make_decode_costs(mem_read)
        record_failures = Compiler.compile(self.failures.make_recorder())
        out_h, out_w = self.output_size
        n_views = self.n_views
        dct_scaling = self.dct_scaling

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, decoded_storage = my_storage
            epoch = read_epoch()
            count = len(batch_indices)
            order = costliest_first(decode_costs(batch_indices, metadata, storage_state))
            claimed = np.zeros(1, np.int64)
            failed = np.zeros(count, np.bool_)
            for _ in my_range(sharing_threads(count)):
                while True:
                    dst_ix = claim_next(order, claimed)
                    if dst_ix < 0:
                        break
                    source_ix = batch_indices[dst_ix]
                    field = metadata[source_ix]
                    image_data = mem_read(field['data_ptr'], storage_state)
                    height = np.uint32(field['height'])
                    width = np.uint32(field['width'])

                    boxes = np.empty((n_views, 4), np.int64)
                    flips = np.empty(n_views, np.bool_)
                    draw(source_ix, epoch, int(height), int(width), storage_state, boxes, flips)

                    out = destination[dst_ix]
                    if field['mode'] == jpg:
                        d = dct_denominator(boxes, out_h, out_w, dct_scaling)
                        dec_h = (height + np.uint32(d - 1)) // np.uint32(d)
                        dec_w = (width + np.uint32(d - 1)) // np.uint32(d)
                        buffer = decoded_storage[dst_ix]
                        if imdecode_c(image_data, buffer, height, width, height, width,
                                      0, 0, 1, d, False, False) != 0:
                            # damaged since written; the buffer still holds another image
                            failed[dst_ix] = True
                            out[:] = 0
                            continue
                        image = buffer[:3 * dec_h * dec_w].reshape(dec_h, dec_w, 3)
                    else:
                        d = 1
                        image = image_data.reshape(height, width, 3)

                    for v in range(n_views):
                        resize_view(image, boxes[v, 0] / d, boxes[v, 1] / d, boxes[v, 2] / d,
                                    boxes[v, 3] / d, flips[v], out[v])
            if failed.any():
                record_failures(failed, batch_indices)
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode


def make_decode_costs(mem_read):
    """``decode_costs(batch_indices, metadata, storage_state)``, compiled as FFCV compiles ops:
    each sample's estimated decode cost, for :func:`loaders.work_sharing.costliest_first`. A
    JPEG's decode time follows its size in bytes (correlation 0.96 over the loader
    benchmark's images, against 0.34 for its pixel count); a raw image is only copied (0)."""
    jpg = IMAGE_MODES['jpg']

    def decode_costs(batch_indices, metadata, storage_state):
        costs = np.zeros(len(batch_indices), np.int64)
        for k in range(len(batch_indices)):
            field = metadata[batch_indices[k]]
            if field['mode'] == jpg:
                costs[k] = len(mem_read(field['data_ptr'], storage_state))
        return costs
    return Compiler.compile(decode_costs)


class SampleIndex(Operation):
    """Decoder that ignores the field's content and outputs each sample's dataset index.

    The GPU photometric augment derives its per-sample parameters from (seed, epoch, index),
    exactly like the CPU ops, so it needs the indices of the batch.
    """

    def declare_state_and_memory(self, previous_state):
        return (replace(previous_state, jit_mode=True, shape=(), dtype=np.dtype('<i8')),
                AllocationQuery((), np.dtype('<i8')))

    def generate_code(self):
        def indices(batch_indices, destination, metadata, storage_state):
            for i in range(len(batch_indices)):
                destination[i] = batch_indices[i]
            return destination[:len(batch_indices)]
        return indices
