"""The CPU photometric FFCV op: per-sample draws applied in place, thread-invariant."""
import numpy as np
import pytest
import torch
from ffcv.pipeline.compiler import Compiler

from loaders.epoch import EpochCell
from loaders.photometric import PhotometricAugment
from loaders.photometric_kernels import augment_view
from loaders.photometric_params import blur_kernel_size, make_strengths, photometric_params


def _run_op(op, batch, indices, threads):
    previous = Compiler.num_threads, torch.get_num_threads()
    try:
        Compiler.set_num_threads(threads)
        fn = Compiler.compile(op.generate_code())
        out = batch.copy()
        result = fn(out, None, indices)
        assert result is out or np.shares_memory(result, out)
        return out
    finally:
        Compiler.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])


def test_ffcv_op_thread_invariant_and_matches_reference(float_photos):
    views = np.stack([np.round(img * 255).astype(np.uint8) for img in float_photos])
    b, n_views = 12, 2
    batch = np.stack([np.stack([views[(i + v) % 3] for v in range(n_views)]) for i in range(b)])
    indices = np.arange(100, 100 + b, dtype=np.uint64)[::-1].copy()
    cell = EpochCell(3)
    strengths = make_strengths()
    op = PhotometricAugment(seed=5, epoch_cell=cell, strengths=strengths)
    one = _run_op(op, batch, indices, 1)
    two = _run_op(op, batch, indices, 2)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, batch)

    params = photometric_params(5, 3, indices.astype(np.int64), n_views, strengths)
    h, w = batch.shape[2:4]
    buf = np.empty((h, w, 3), np.float32)
    ref = batch.copy()
    for i in range(b):
        for v in range(n_views):
            augment_view(ref[i, v], params[i, v], blur_kernel_size(h, w), buf,
                         np.empty_like(buf))
    np.testing.assert_array_equal(one, ref)

    # the epoch is read when the batch runs, not frozen at compile time
    fn = Compiler.compile(op.generate_code())
    cell.set(4)
    later = batch.copy()
    fn(later, None, indices)
    assert not np.array_equal(later, one)


def test_ffcv_op_view_ids_and_fixed_blur_kernel(float_photos):
    """View k gets the parameters of view number view_ids[k]; blur_kernel replaces the
    image-size kernel."""
    views = np.stack([np.round(img * 255).astype(np.uint8) for img in float_photos])
    batch = np.stack([views[[i % 3, (i + 1) % 3]] for i in range(6)])
    indices = np.arange(6, dtype=np.uint64)
    strengths = make_strengths(p_jitter=0.0, p_gray=0.0, p_blur=1.0, sigma_min=1.5)
    op = PhotometricAugment(2, EpochCell(1), strengths, blur_kernel=5, view_ids=[3, 1])
    out = _run_op(op, batch, indices, 1)
    params = photometric_params(2, 1, indices.astype(np.int64), 4, strengths)
    buf = np.empty(batch.shape[2:], np.float32)
    ref, wide = batch.copy(), batch.copy()
    for i in range(len(batch)):
        for k, view in enumerate((3, 1)):
            augment_view(ref[i, k], params[i, view], 5, buf, np.empty_like(buf))
            augment_view(wide[i, k], params[i, view], 7, buf, np.empty_like(buf))
    np.testing.assert_array_equal(out, ref)
    assert not np.array_equal(out, wide)


def test_ffcv_op_declares_state():
    from ffcv.pipeline.state import State
    op = PhotometricAugment(0, EpochCell())
    state = State(jit_mode=True, device=torch.device('cpu'), shape=(2, 32, 32, 3),
                  dtype=np.dtype('u1'))
    new_state, memory = op.declare_state_and_memory(state)
    assert new_state.shape == (2, 32, 32, 3) and new_state.jit_mode and memory is None
    with pytest.raises(ValueError):
        op.declare_state_and_memory(State(True, torch.device('cpu'), (32, 32, 3),
                                          np.dtype('u1')))
    with pytest.raises(ValueError):
        PhotometricAugment(0, EpochCell(), blur_kernel=4)
    with pytest.raises(ValueError, match='uint8'):
        op.declare_state_and_memory(State(True, torch.device('cpu'), (2, 32, 32, 3),
                                          np.dtype('f4')))
    with pytest.raises(ValueError, match='3 view ids for 2 views'):
        PhotometricAugment(0, EpochCell(), view_ids=[0, 1, 2]).declare_state_and_memory(state)
