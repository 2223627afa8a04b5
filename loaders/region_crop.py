"""Region-crop decoder for the Region Tracker: views of one tracked region of a frame pair.

A pairs ``.beton`` (``writers/write_video_pairs.py``) holds per sample ``proposals`` float32
``(R, 9)`` rows ``[xa0, ya0, xa1, ya1, xb0, yb0, xb1, yb1, conf]`` and ``num_proposals``:
rows ``[0, num_proposals)`` are tracked regions, the a-box in ``frame_a``'s and the b-box in
``frame_b``'s stored pixel grid (x1, y1 exclusive). ``RegionViewsCrop`` decodes a frame once
and renders any mix of views of it, each numbered by its global view id:

* ``'full'``: RandomResizedCrop(``scale``) of the whole frame, as ``MultiViewRandomResizedCrop``;
* ``'region'``: the sample's picked region, widened by a random context margin, then
  RandomResizedCrop(``region_scale``) inside it.

Per sample (all draws counter-based, ``rng.py``):

1. **Pick** one row uniformly among the valid ones from ``sample_state(seed, epoch, index,
   STREAM_REGION)``. Both frames' ops make the same draw, so the query and the key show the
   same tracked region. Uniform rather than confidence-weighted: the writer already drops lost
   tracks, and a tracker's confidence has no common scale across trackers.
2. **Context** per region view: a fraction ``m ~ U(region_context)`` from ``view_state(...,
   STREAM_CONTEXT, view)``; the box grows by ``m`` times its width (height) on the left and
   right (top and bottom), is rounded outwards to whole pixels and clipped to the frame.
3. **Crop**: ``draw_views`` inside that region with the view's own crop stream, then the shared
   decode (TurboJPEG DCT scaling: the boxes are already in stored pixels, and the decoder scales
   every box by the decode factor) and antialiased resize with flip.

Rendering from the frame already decoded: a region view costs a resize and no decode. A
tracked region is small (median about 70 px on 512 px frames), so its view is mostly an
upscale, for which the base op's resize runs its passes horizontal first
(``resize.resize_view``).

With no valid row (``num_proposals == 0``, or a degenerate box) the region is the whole frame,
so the views stay valid images; the trainer masks such samples out of the region loss
(``tracked_pairs(path)`` in ``pair_loader.py``, also ``MultiViewLoader.region_valid``).

The proposal rows stay in the file: a per-sample table (pointer to the sample's proposals,
row count) built from FFCV's metadata is read by address (``host_array``), and the one picked
row is read through FFCV's memory manager, like the JPEG bytes.
"""
import math

import numpy as np
from ffcv.pipeline.compiler import Compiler

from fastssl_common.errors import UserError
from fastssl_common.formats import (
    BOX_OF_FRAME,
    NUM_COLUMNS,
    NUM_PROPOSALS,
    PROPOSAL_DTYPE,
    PROPOSALS,
)
from fastssl_common.proposals import array_problem, first_bad_count

from .host_array import make_row_reader
from .jit import jit
from .multiview_decoder import MultiViewRandomResizedCrop, draw_views
from .rng import STREAM_CONTEXT, STREAM_REGION, next_int, next_range, sample_state, view_state

# Which box of a proposal row belongs to which stored frame: its first column.
BOX_COLUMN = {field: box.start for field, box in BOX_OF_FRAME.items()}
VIEW_KINDS = ('full', 'region')


class RegionTable:
    """Where each sample's proposals are, and how many rows are valid, for one .beton.

    Built from the reader's metadata (pointers and counts live there), so no image and no
    proposal array is read. ``valid`` is ``num_proposals > 0`` over all samples.
    """

    def __init__(self, reader, path):
        names = list(reader.handlers)
        field = reader.handlers[PROPOSALS]
        problem = array_problem(field.dtype, field.shape)
        if problem:
            raise UserError(f"{path}: field '{PROPOSALS}' {problem}")
        self.max_rows = int(field.shape[0])
        pointers = reader.metadata[f'f{names.index(PROPOSALS)}']
        counts = reader.metadata[f'f{names.index(NUM_PROPOSALS)}'].astype(np.int64)
        bad = first_bad_count(counts, self.max_rows)
        if bad:
            raise UserError(f"{path}: sample {bad[0]}'s '{NUM_PROPOSALS}' {bad[1]}")
        self.rows = np.ascontiguousarray(np.stack([pointers.astype(np.int64), counts], axis=1))
        self.valid = counts > 0

    @staticmethod
    def from_reader(reader, path):
        """The table, or None when the .beton has no proposal fields."""
        if PROPOSALS not in reader.handlers or NUM_PROPOSALS not in reader.handlers:
            return None
        return RegionTable(reader, path)


@jit(cache=True)
def pick_region(seed, epoch, index, count):
    """Row (0 .. count-1) of sample ``index``'s region; the same for every op of the sample."""
    state = sample_state(seed, epoch, index, STREAM_REGION)
    state, k = next_int(state, count)
    return k


@jit(cache=True)
def context_region(seed, epoch, index, view, box, context_min, context_max, height, width):
    """(top, left, h, w) in whole pixels: ``box`` (x0, y0, x1, y1) widened on each side by a
    fraction ``m ~ U[context_min, context_max)`` (view ``view``'s own draw) of its width and
    height, rounded outwards and clipped to the ``height x width`` frame; the whole frame if
    the box is degenerate (empty, NaN, or outside the frame)."""
    state = view_state(seed, epoch, index, STREAM_CONTEXT, view)
    state, m = next_range(state, context_min, context_max)
    x0, y0, x1, y1 = box[0], box[1], box[2], box[3]
    if not (x1 > x0 and y1 > y0):  # also catches NaN
        return 0, 0, height, width
    dx = m * (x1 - x0)
    dy = m * (y1 - y0)
    left = max(int(math.floor(x0 - dx)), 0)
    top = max(int(math.floor(y0 - dy)), 0)
    right = min(int(math.ceil(x1 + dx)), width)
    bottom = min(int(math.ceil(y1 + dy)), height)
    if right <= left or bottom <= top:
        return 0, 0, height, width
    return top, left, bottom - top, right - left


class RegionViewsCrop(MultiViewRandomResizedCrop):
    """FFCV decoder for ``frame_a`` / ``frame_b``: one decode, views of kinds 'full' and 'region'.

    ``views``: ``((view_id, kind), ...)`` in output order; ``view_id`` keys the view's random
    streams (crop, context, photometric). ``field``: which frame this op decodes (chooses the
    box columns, ``BOX_COLUMN``). ``regions``: the ``RegionTable`` (needed if any view is a
    region view). ``region_scale``: RandomResizedCrop scale range within the region;
    ``region_context``: (lo, hi) context margin fraction. Other arguments as the base op.
    """

    def __init__(self, output_size, views, field, regions=None, region_scale=(0.5, 1.0),
                 region_context=(0.0, 0.3), **kwargs):
        super().__init__(output_size, n_views=len(views), **kwargs)
        self.view_ids = np.array([int(v) for v, _ in views], np.int64)
        self.is_region = np.array([kind == 'region' for _, kind in views], np.bool_)
        if self.is_region.any() and (regions is None or field not in BOX_COLUMN):
            raise ValueError(f"region views of '{field}' need a RegionTable and a field in "
                             f"{sorted(BOX_COLUMN)}")
        self.box_column = BOX_COLUMN.get(field, 0)
        self.regions = regions
        self.region_scale = tuple(float(s) for s in region_scale)
        self.region_context = tuple(float(c) for c in region_context)

    def make_view_drawer(self):
        seed = self.seed
        view_ids, is_region = self.view_ids, self.is_region
        scale_min, scale_max = self.scale
        region_min, region_max = self.region_scale
        context_min, context_max = self.region_context
        log_ratio_min, log_ratio_max = self.log_ratio
        flip_prob = self.flip_prob
        has_table = self.regions is not None
        # A full-views-only op of a .beton without proposals never reads this stand-in table.
        rows = self.regions.rows if has_table else np.zeros((1, 2), np.int64)
        read_row = Compiler.compile(make_row_reader(rows))
        mem_read = self.memory_read
        column = self.box_column
        row_bytes = PROPOSAL_DTYPE.itemsize * NUM_COLUMNS

        def draw(index, epoch, height, width, storage_state, boxes, flips):
            row = np.empty(2, np.int64)
            count = 0
            if has_table:
                read_row(index, row)
                count = row[1]
            box = np.empty(NUM_COLUMNS, np.float32)
            box[column] = 0.0
            box[column + 1] = 0.0
            box[column + 2] = width
            box[column + 3] = height
            if count > 0:
                k = pick_region(seed, epoch, index, count)
                data = mem_read(np.uint64(row[0]), storage_state)
                box.view(np.uint8)[:] = data[k * row_bytes:(k + 1) * row_bytes]
            for v in range(view_ids.shape[0]):
                top, left, h, w = 0, 0, height, width
                low, high = scale_min, scale_max
                if is_region[v]:
                    top, left, h, w = context_region(seed, epoch, index, view_ids[v],
                                                     box[column:column + 4], context_min,
                                                     context_max, height, width)
                    low, high = region_min, region_max
                draw_views(seed, epoch, index, view_ids[v], top, left, h, w, low, high,
                           log_ratio_min, log_ratio_max, flip_prob, boxes[v:v + 1],
                           flips[v:v + 1])
        return draw
