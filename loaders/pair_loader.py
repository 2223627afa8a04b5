"""Build the FFCV loader that yields MoCo views: decode once, N views, optional CPU augment.

``MultiViewLoader`` wraps a real ``ffcv.loader.Loader`` and adds the two things FFCV lacks:
an explicit epoch (so traversal order and per-sample augment are exactly reproducible on
resume) and the sample indices of each batch (for the GPU photometric augment).
Batches are ``(views, indices, labels)`` torch tensors, views uint8 ``(B, V, H, W, 3)``, all
three living in FFCV's ring buffer: a batch is valid until the next one is drawn, so clone
what you keep (``all_indices.append(indices.clone())``); one epoch at a time.

``view_fields`` says which image fields give which views. An entry ``(field, n)`` gives n
full-frame views, numbered on from the views of the entries before it: ``(('image', 2),)`` is
MoCo v2 (two views of one image, one decode); ``(('frame_a', 1), ('frame_b', 1))`` is Frame
Temporal Invariance (view 0 from frame i, view 1 from frame i+k, each frame decoded once).
An entry ``(field, ((view_id, kind), ...))`` names its views' global numbers and kinds,
``'full'`` or ``'region'`` (a tracked region of a frame pair, ``region_crop.py``), e.g. FTI +
Region Tracker: ``(('frame_a', ((0, 'full'), (2, 'region'))), ('frame_b', ((1, 'full'),
(3, 'region'))))``, still one decode per frame. A view's number is its position in the batch's
view axis and keys its random draws (crop, context, photometric, on CPU or GPU), so every
view has its own. The view numbers must be exactly 0 .. V-1.
"""

import numpy as np
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.pipeline.pipeline_spec import PipelineSpec
from ffcv.reader import Reader
from ffcv.transforms import ToTensor

from fastssl_common.beton_file import not_a_beton
from fastssl_common.errors import UserError
from fastssl_common.formats import IMAGE, LABEL, PROPOSALS, VIDEO_PAIRS
from fastssl_common.numbers import check_number, is_number

from .decode_failures import DecodeFailures
from .epoch import EpochCell
from .integrity import check_size, require_dataset_file
from .kept_buffers import KeptBuffersLoader
from .multiview_decoder import MultiViewRandomResizedCrop, SampleIndex
from .photometric import PhotometricAugment
from .quasi_random import draw_from_the_built_table
from .region_crop import BOX_COLUMN, VIEW_KINDS, RegionTable, RegionViewsCrop
from .work_sharing import check_threads

ORDERS = {'random': OrderOption.RANDOM, 'quasi_random': OrderOption.QUASI_RANDOM,
          'sequential': OrderOption.SEQUENTIAL}


def open_beton(path, required_fields=(IMAGE,), hint=''):
    """Open a .beton's header; UserError naming the path if it is missing, not a .beton,
    shorter than its header and allocation table say (``integrity.check_size``), or lacks a
    required field (``hint`` says where the right file comes from)."""
    require_dataset_file(path)
    check_size(path)
    try:
        reader = Reader(path)
    except Exception as err:  # ffcv raises assorted errors on foreign files
        raise not_a_beton(path, type(err).__name__) from None
    for name in required_fields:
        if name not in reader.handlers:
            raise UserError(f"{path} has no '{name}' field (fields: {list(reader.handlers)})"
                            f"{hint}")
    return reader


def tracked_pairs(path):
    """Bool per sample of the .beton ``path``: does it have a tracked region (num_proposals >
    0)? All False without proposal fields. Reads FFCV's metadata only (no image)."""
    reader = open_beton(path, ())
    regions = RegionTable.from_reader(reader, path)
    return np.zeros(reader.num_samples, bool) if regions is None else regions.valid


def view_plan(view_fields):
    """``view_fields`` as ``[(field, ((view_id, kind), ...), counted), ...]``; ``counted``
    marks a ``(field, n)`` entry (n full views numbered on from the views before it), which
    keeps the plain multi-view op. ValueError for a malformed spec."""
    plan, ids, fields = [], [], set()
    shape = 'entries (field, n) or (field, ((view_id, kind), ...))'
    for entry in view_fields:
        try:
            field, spec = entry
        except (TypeError, ValueError):
            raise ValueError(f'view_fields holds {shape}, got {entry!r}') from None
        if field in fields:
            raise ValueError(f"view_fields names '{field}' twice (one entry per field)")
        fields.add(field)
        if isinstance(spec, (int, np.integer)):
            views = tuple((len(ids) + k, 'full') for k in range(int(spec)))
            plan.append((field, views, True))
        else:
            try:
                views = tuple((int(v), kind) for v, kind in spec)
            except (TypeError, ValueError):
                raise ValueError(f'view_fields holds {shape}, got {entry!r}') from None
            plan.append((field, views, False))
        if not views:
            raise ValueError(f"view_fields entry '{field}' has no views")
        for view_id, kind in views:
            if kind not in VIEW_KINDS:
                raise ValueError(f"view {view_id} of '{field}': kind '{kind}' is not one of "
                                 f"{VIEW_KINDS}")
            if kind == 'region' and field not in BOX_COLUMN:
                raise ValueError(f"region views come from {sorted(BOX_COLUMN)}, not '{field}'")
            ids.append(view_id)
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f'view ids must be 0 .. {len(ids) - 1} once each, got {ids}')
    return plan


def check_range(name, pair, low, high, low_open=False):
    """A (lo, hi) kwarg with low <= lo <= hi <= high (lo > low if low_open), as floats."""
    ok = (isinstance(pair, (tuple, list, np.ndarray)) and len(pair) == 2
          and all(is_number(x) for x in pair))
    lo, hi = (float(x) for x in pair) if ok else (None, None)
    if not (ok and (lo > low if low_open else lo >= low) and lo <= hi <= high):
        shown = tuple(pair) if isinstance(pair, (tuple, list, np.ndarray)) else pair
        raise UserError(f"{name} must be (lo, hi) with {low} {'<' if low_open else '<='} lo "
                        f"<= hi <= {high}, got {shown!r}")
    return lo, hi


class MultiViewLoader:
    def __init__(self, path, batch_size, resolution, view_fields=((IMAGE, 2),), num_workers=1,
                 seed=0,
                 order='random', scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                 cpu_photometric=None, distributed=False, drop_last=True, os_cache=True,
                 batches_ahead=3, dct_scaling=True, hint='', region_context=(0.0, 0.3),
                 region_scale=(0.5, 1.0), indices=None, batch_key='batch size'):
        """``cpu_photometric``: None, or a strengths vector (``make_strengths``) to run the
        Numba MoCo v2 photometric augment on every view inside the pipeline.

        Region views: ``region_context`` (lo, hi) is the range of the context margin, a
        fraction of the tracked box's width / height added on each side; ``region_scale`` the
        RandomResizedCrop scale range within the widened region. ``indices``: iterate only
        these sample indices (e.g. ``np.flatnonzero(loader.region_valid)``); ``num_samples``
        counts them. ``region_valid``: bool per sample of the whole .beton (num_proposals >
        0), None without proposal fields. ``os_cache=False``: FFCV's own cache of the file,
        in random order every page (``batch_memory.check_process_cache`` checks it fits).
        ``batch_key`` names the batch size in the refusal of a dataset smaller than a batch
        (a config key, for a program's users)."""
        # Checked before FFCV sees them: it fails late and obscurely (ZeroDivisionError,
        # thread tracebacks, math domain errors) or silently truncates
        batch_size = check_number(batch_size, 'batch_size', 1)
        resolution = check_number(resolution, 'resolution', 1)
        seed = check_number(seed, 'seed', 0)
        scale = check_range('scale', scale, 0.0, 1.0, low_open=True)
        ratio = check_range('ratio', ratio, 0.0, np.inf, low_open=True)
        flip_prob = check_number(flip_prob, 'flip_prob', 0, 1, integer=False)
        num_workers = check_threads(num_workers, 'num_workers')
        # FFCV's queue of batches_ahead batches has no bound below 1: its thread then writes
        # the ring buffer's slots under batches not yet read, and an epoch repeats batches
        batches_ahead = check_number(batches_ahead, 'batches_ahead', 1)
        plan = view_plan(view_fields)
        reader = open_beton(path, [name for name, _, _ in plan], hint)
        if order not in ORDERS:
            raise UserError(f"data.order must be one of {sorted(ORDERS)}, got '{order}'")
        region_context = check_range('region_context', region_context, 0.0, np.inf)
        region_scale = check_range('region_scale', region_scale, 0.0, 1.0, low_open=True)
        regions = RegionTable.from_reader(reader, path)
        wants_regions = any(kind == 'region' for _, views, _ in plan for _, kind in views)
        if wants_regions and regions is None:
            raise UserError(f"{path} has no '{PROPOSALS}' field: region views need "
                            f"tracked proposals ({VIDEO_PAIRS.writer} --proposals N)"
                            f"{hint}")
        if indices is not None:
            indices = np.asarray(indices)
            if (indices.ndim != 1 or not len(indices) or indices.dtype.kind not in 'iu'
                    or indices.min() < 0 or indices.max() >= reader.num_samples):
                raise UserError(f'indices must be a non-empty list of sample numbers in 0 .. '
                                f'{reader.num_samples - 1} of {path}')
            indices = indices.astype(np.uint64)  # FFCV's own index type
        self.num_samples = reader.num_samples if indices is None else len(indices)
        if batch_size > self.num_samples and drop_last:
            read = ('' if indices is None else
                    f' of its {reader.num_samples} that this loader reads')
            raise UserError(f'{batch_key} {batch_size} is larger than the dataset {path} '
                            f'({self.num_samples} samples{read}): use {batch_key} <= '
                            f'{self.num_samples}')
        self.path = path
        self.region_valid = None if regions is None else regions.valid
        self.epoch_cell = EpochCell()
        self.decode_failures = DecodeFailures()     # the images that did not decode, so far
        common = dict(scale=scale, ratio=ratio, flip_prob=flip_prob, seed=seed,
                      epoch_cell=self.epoch_cell, dct_scaling=dct_scaling,
                      failures=self.decode_failures)
        pipelines = {}
        for field, views, counted in plan:
            view_ids = [view_id for view_id, _ in views]
            if counted:
                decoder = MultiViewRandomResizedCrop((resolution, resolution),
                                                     n_views=len(views), first_view=view_ids[0],
                                                     **common)
            else:
                decoder = RegionViewsCrop((resolution, resolution), views, field, regions,
                                          region_scale, region_context, **common)
            ops = []
            if cpu_photometric is not None:
                ops.append(PhotometricAugment(seed, self.epoch_cell, cpu_photometric,
                                              view_ids=view_ids))
            pipelines[field] = PipelineSpec(field, decoder=decoder, transforms=ops + [ToTensor()])
        first_field = plan[0][0]
        pipelines['index'] = PipelineSpec(first_field, decoder=SampleIndex(),
                                          transforms=[ToTensor()])
        self.view_fields = tuple(view_fields)
        self._fields = [field for field, _, _ in plan]
        field_ids = [[view_id for view_id, _ in views] for _, views, _ in plan]
        in_order = sum(field_ids, []) == sorted(sum(field_ids, []))
        # Concatenating the fields' views gives view-id order unless ids interleave (fti_rt)
        self._field_ids = None if in_order else field_ids
        self._view_buffers, self._next_buffer = [None, None], 0
        has_labels = LABEL in reader.handlers
        if has_labels:
            pipelines[LABEL] = [IntDecoder(), ToTensor()]
        for name in reader.handlers:
            if name not in pipelines:
                pipelines[name] = None
        self.has_labels = has_labels
        self.loader = KeptBuffersLoader(
            path, batch_size=batch_size, num_workers=num_workers, order=ORDERS[order],
            seed=seed, pipelines=pipelines, distributed=distributed, drop_last=drop_last,
            os_cache=os_cache, batches_ahead=batches_ahead, indices=indices)
        if order == 'quasi_random':
            draw_from_the_built_table(self.loader.traversal_order)
        # FFCV returns outputs in its pipeline order (file fields first, then extra pipelines)
        self._position = {name: i for i, name in enumerate(
            n for n, spec in self.loader.pipeline_specs.items() if spec is not None)}
        self.epoch = 0

    def _in_view_order(self, views):
        """One (B, V, H, W, 3) tensor with view v at position v from the fields' outputs.

        Interleaved ids (fti_rt) are copied view by view (plain slices: index tensors make a
        slow gather) into one of two kept buffers, so a batch stays valid until the one after
        next (the module promises until the next). A fresh tensor per batch (38 MB at batch
        64, 224 px, four views: above glibc's mmap threshold) is page-faulted anew each time;
        with the gather that cost 1.1 ms CPU per pair, more than rendering both region views."""
        if self._field_ids is None:
            return views[0] if len(views) == 1 else torch.cat(views, dim=1)
        first = views[0]
        rows = first.shape[0]
        shape = (sum(v.shape[1] for v in views),) + tuple(first.shape[2:])
        out = self._view_buffers[self._next_buffer]
        if out is None or out.shape[0] < rows or out.shape[1:] != shape:
            out = first.new_empty((rows,) + shape)
            self._view_buffers[self._next_buffer] = out
        self._next_buffer ^= 1
        out = out[:rows]              # the epoch's last batch may be smaller
        for ids, field_views in zip(self._field_ids, views):
            for j, view_id in enumerate(ids):
                out[:, view_id] = field_views[:, j]
        return out

    def set_epoch(self, epoch):
        """Choose the epoch the next iteration runs: its order and its per-sample draws.
        Each iteration, once started, advances it by one, even if left before its end."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epoch_cell.set(self.epoch)
        self.loader.next_epoch = self.epoch
        # Advanced now, not at the epoch's end: a loop that breaks early (a step budget)
        # would otherwise see the same order and draws every time
        self.epoch += 1
        batches = iter(self.loader)
        try:
            for batch in batches:
                views = self._in_view_order([batch[self._position[name]]
                                             for name in self._fields])
                indices = batch[self._position['index']].reshape(-1)
                labels = batch[self._position[LABEL]].reshape(-1) if self.has_labels else None
                yield views, indices, labels
        finally:
            batches.close()
