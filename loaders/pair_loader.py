"""Build the FFCV loader that yields MoCo views: decode once, N views, optional CPU augment.

``MultiViewLoader`` wraps a real ``ffcv.loader.Loader`` and adds the two things FFCV lacks:
an explicit epoch (so traversal order and per-sample augment are exactly reproducible on
resume) and the sample indices of each batch (for the GPU photometric augment).
Batches are ``(views, indices, labels)`` torch tensors: views uint8 ``(B, V, H, W, 3)``,
living in FFCV's ring buffer — convert or clone before the next batch.

``view_fields`` says which image fields give which views, in order: ``(('image', 2),)`` is
MoCo v2 (two views of one image, one decode); ``(('frame_a', 1), ('frame_b', 1))`` is Frame
Temporal Invariance (view 0 from frame i, view 1 from frame i+k, each frame decoded once).
Views are numbered across fields, so every view has its own random draws.
"""
import os
import time

import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.pipeline_spec import PipelineSpec
from ffcv.reader import Reader
from ffcv.transforms import ToTensor

from fastssl_common.errors import UserError

from .epoch import EpochCell
from .multiview_decoder import MultiViewRandomResizedCrop, SampleIndex
from .photometric import PhotometricAugment

ORDERS = {'random': OrderOption.RANDOM, 'quasi_random': OrderOption.QUASI_RANDOM,
          'sequential': OrderOption.SEQUENTIAL}


def open_beton(path, required_fields=('image',), hint=''):
    """Open a .beton's header; UserError naming the path if it is missing, not a .beton, or
    lacks a required field (``hint`` says where the right file comes from)."""
    if not os.path.isfile(path):
        raise UserError(f"dataset file not found: {path}")
    try:
        reader = Reader(path)
    except Exception as err:  # ffcv raises assorted errors on foreign files
        raise UserError(f"{path} is not a readable .beton file ({type(err).__name__})") from None
    for name in required_fields:
        if name not in reader.handlers:
            raise UserError(f"{path} has no '{name}' field (fields: {list(reader.handlers)})"
                            f"{hint}")
    return reader


class MultiViewLoader:
    def __init__(self, path, batch_size, resolution, view_fields=(('image', 2),), num_workers=1,
                 seed=0,
                 order='random', scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                 cpu_photometric=None, distributed=False, drop_last=True, os_cache=True,
                 batches_ahead=3, dct_scaling=True, hint=''):
        """``cpu_photometric``: None, or a strengths vector (``make_strengths``) to run the
        Numba MoCo v2 photometric augment on every view inside the pipeline."""
        reader = open_beton(path, [name for name, _ in view_fields], hint)
        if order not in ORDERS:
            raise UserError(f"data.order must be one of {sorted(ORDERS)}, got '{order}'")
        if batch_size > reader.num_samples and drop_last:
            raise UserError(f"batch size {batch_size} is larger than the dataset {path} "
                            f"({reader.num_samples} samples)")
        self.path = path
        self.num_samples = reader.num_samples
        self.epoch_cell = EpochCell()
        pipelines = {}
        first_view = 0
        for field, count in view_fields:
            decoder = MultiViewRandomResizedCrop(
                (resolution, resolution), n_views=count, scale=scale, ratio=ratio,
                flip_prob=flip_prob, seed=seed, epoch_cell=self.epoch_cell,
                dct_scaling=dct_scaling, first_view=first_view)
            ops = []
            if cpu_photometric is not None:
                ops.append(PhotometricAugment(seed, self.epoch_cell, cpu_photometric,
                                              first_view=first_view))
            pipelines[field] = PipelineSpec(field, decoder=decoder, transforms=ops + [ToTensor()])
            first_view += count
        first_field = view_fields[0][0]
        pipelines['index'] = PipelineSpec(first_field, decoder=SampleIndex(),
                                          transforms=[ToTensor()])
        self.view_fields = tuple(view_fields)
        has_labels = 'label' in reader.handlers
        if has_labels:
            pipelines['label'] = [IntDecoder(), ToTensor()]
        for name in reader.handlers:
            if name not in pipelines:
                pipelines[name] = None
        self.has_labels = has_labels
        self.loader = Loader(path, batch_size=batch_size, num_workers=num_workers,
                             order=ORDERS[order], seed=seed, pipelines=pipelines,
                             distributed=distributed, drop_last=drop_last, os_cache=os_cache,
                             batches_ahead=batches_ahead)
        # FFCV returns outputs in its pipeline order (file fields first, then extra pipelines)
        self._position = {name: i for i, name in enumerate(
            n for n, spec in self.loader.pipeline_specs.items() if spec is not None)}
        self.epoch = 0

    @staticmethod
    def _next_batch(iterator):
        """FFCV's next batch, or None at the end of the epoch.

        FFCV's iterator blocks forever on its queue if its loading thread dies (an exception
        in an op); wait on the queue ourselves and fail loudly instead of hanging.
        """
        while iterator.output_queue.empty():
            if not iterator.is_alive() and iterator.output_queue.empty():
                raise RuntimeError("the FFCV loading thread stopped with an error "
                                   "(its traceback is printed above)")
            time.sleep(0.0005)
        try:
            return next(iterator)
        except StopIteration:
            return None

    def set_epoch(self, epoch):
        """Choose the epoch the next iteration runs: its order and its per-sample draws."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epoch_cell.set(self.epoch)
        self.loader.next_epoch = self.epoch
        iterator = iter(self.loader)
        try:
            while True:
                batch = self._next_batch(iterator)
                if batch is None:
                    break
                views = [batch[self._position[name]] for name, _ in self.view_fields]
                views = views[0] if len(views) == 1 else torch.cat(views, dim=1)
                indices = batch[self._position['index']].reshape(-1)
                labels = batch[self._position['label']].reshape(-1) if self.has_labels else None
                yield views, indices, labels
        finally:
            iterator.close()  # FFCV leaks its prefetch thread if an iterator is abandoned
        self.epoch += 1
