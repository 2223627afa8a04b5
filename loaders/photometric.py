"""The FFCV op of the MoCo v2 photometric augment (CPU placement), in place on uint8 views.

Each sample's parameters are drawn from (seed, epoch, index, view) (``photometric_params.py``)
and applied with the Numba kernels (``photometric_kernels.py``), so a view gets the same
augment here as in the GPU placement (``fastssl/gpu_augment.py``).
"""
from dataclasses import replace

import numpy as np
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation

from .photometric_kernels import aligned_image, augment_view, estimated_cost
from .photometric_params import (
    NUM_PARAMS,
    NUM_STRENGTHS,
    blur_kernel_size,
    draw_sample_params,
    make_strengths,
)
from .work_sharing import claim_next, costliest_first, sharing_threads


class PhotometricAugment(Operation):
    """MoCo v2 colour jitter / grayscale / blur on a uint8 batch (B, V, H, W, 3), in place.

    Parameters of view ``k`` of the sample with dataset index ``i`` are those of view number
    ``view_ids[k]``: ``photometric_params(seed, epoch, [i], n, strengths)[0, view_ids[k]]``
    (same code, any n > view_ids[k]). ``view_ids`` numbers this batch's views within the sample
    (the decoder's views; default 0 .. V-1), ``epoch`` is read from ``epoch_cell`` when the
    batch is processed, so output is reproducible per sample for any thread count.
    ``blur_kernel``: odd kernel side; ``None`` -> ``blur_kernel_size(H, W)``.

    Scratch (two float32 H x W x 3 buffers, each starting a cache line) is allocated per
    sample inside the parallel loop rather than through an ``AllocationQuery``, which would
    pin ``batches_ahead`` x batch x 2 float images.
    """

    def __init__(self, seed, epoch_cell, strengths=None, blur_kernel=None, view_ids=None):
        super().__init__()
        self.seed = int(seed)
        self.view_ids = None if view_ids is None else np.array(view_ids, dtype=np.int64)
        self.epoch_cell = epoch_cell
        self.strengths = (make_strengths() if strengths is None
                          else np.ascontiguousarray(strengths, dtype=np.float64))
        if self.strengths.shape != (NUM_STRENGTHS,):
            raise ValueError(f'strengths must have shape ({NUM_STRENGTHS},)')
        if blur_kernel is not None and (blur_kernel < 1 or blur_kernel % 2 == 0):
            raise ValueError('blur_kernel must be a positive odd integer')
        self.blur_kernel = blur_kernel

    def generate_code(self):
        my_range = Compiler.get_iterator()
        read_epoch = Compiler.compile(self.epoch_cell.make_reader())
        seed = self.seed
        strengths = self.strengths.copy()
        fixed_ksize = -1 if self.blur_kernel is None else int(self.blur_kernel)
        n_params = NUM_PARAMS
        default_ids = self.view_ids is None
        fixed_ids = np.zeros(0, np.int64) if default_ids else self.view_ids

        def photometric(images, dst, indices):
            epoch = read_epoch()
            B = images.shape[0]
            V = images.shape[1]
            H = images.shape[2]
            W = images.shape[3]
            ksize = fixed_ksize
            if ksize < 0:
                ksize = blur_kernel_size(H, W)
            view_ids = np.arange(V) if default_ids else fixed_ids
            params = np.empty((B, V, n_params), dtype=np.float64)
            costs = np.zeros(B)
            for i in range(B):
                draw_sample_params(seed, epoch, indices[i], view_ids, strengths, params[i])
                for v in range(V):
                    costs[i] += estimated_cost(params[i, v], ksize)
            order = costliest_first(costs)
            claimed = np.zeros(1, np.int64)
            for _ in my_range(sharing_threads(B)):
                while True:
                    i = claim_next(order, claimed)
                    if i < 0:
                        break
                    buf = aligned_image(H, W)
                    scratch = aligned_image(H, W)
                    for v in range(V):
                        augment_view(images[i, v], params[i, v], ksize, buf, scratch)
            return images

        photometric.is_parallel = True
        photometric.with_indices = True
        return photometric

    def declare_state_and_memory(self, previous_state):
        shape = previous_state.shape
        if shape is not None and (len(shape) != 4 or shape[-1] != 3):
            raise ValueError(f'PhotometricAugment expects (V, H, W, 3) samples, got {shape}')
        if previous_state.dtype != np.dtype(np.uint8):
            raise ValueError('PhotometricAugment expects uint8 images')
        if self.view_ids is not None and shape is not None and len(self.view_ids) != shape[0]:
            raise ValueError(f'{len(self.view_ids)} view ids for {shape[0]} views')
        return replace(previous_state, jit_mode=True), None
