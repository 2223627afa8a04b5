"""Region-crop op and region views of MultiViewLoader (Region Tracker, FTI + RT)."""
import math
import re

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F
from ffcv.pipeline.compiler import Compiler
from ffcv.reader import Reader
from numba import njit

import loaders.multiview_decoder as mvd
from fastssl_common.errors import UserError
from loaders.pair_loader import MultiViewLoader
from loaders.photometric_kernels import augment_view
from loaders.photometric_params import blur_kernel_size, make_strengths, photometric_params
from loaders.region_crop import context_region, pick_region
from loaders.rng import (
    STREAM_CONTEXT,
    STREAM_REGION,
    next_int,
    next_range,
    sample_state,
    view_state,
)

RT = (('frame_a', ((0, 'region'),)), ('frame_b', ((1, 'region'),)))
FTI_RT = (('frame_a', ((0, 'full'), (2, 'region'))), ('frame_b', ((1, 'full'), (3, 'region'))))
FTI = (('frame_a', 1), ('frame_b', 1))
FIELDS = {'frame_a': (0, 2), 'frame_b': (1, 3)}      # field -> (full view, region view)


@njit
def region_draws(seed, epoch, index, view, count, context_min, context_max):
    """(row, margin) from the documented streams (in Numba: the uint64 states do not fit a
    Python int64 conversion)."""
    _, m = next_range(view_state(seed, epoch, index, STREAM_CONTEXT, view), context_min,
                      context_max)
    k = 0
    if count > 0:
        _, k = next_int(sample_state(seed, epoch, index, STREAM_REGION), count)
    return k, m


def expected_box(seed, epoch, index, view, kind, field, rows, count, height, width,
                 scale, region_scale, context, log_ratio):
    """The crop box and flip a view should have, re-derived from the documented draws."""
    top, left, h, w, low, high = 0, 0, height, width, *scale
    if kind == 'region':
        low, high = region_scale
        k, m = region_draws(seed, epoch, index, view, int(count), *context)
        if count:
            c = 0 if field == 'frame_a' else 4
            x0, y0, x1, y1 = (float(v) for v in rows[k][c:c + 4])
            dx, dy = m * (x1 - x0), m * (y1 - y0)
            left, top = max(math.floor(x0 - dx), 0), max(math.floor(y0 - dy), 0)
            w = min(math.ceil(x1 + dx), width) - left
            h = min(math.ceil(y1 + dy), height) - top
    boxes, flips = np.empty((1, 4), np.int64), np.empty(1, np.bool_)
    mvd.draw_views(seed, epoch, index, view, top, left, h, w, low, high, *log_ratio, 0.5,
                   boxes, flips)
    return boxes[0], flips[0]


def colour_mask(view, rgb):
    return np.abs(view.astype(int) - np.array(rgb)).max(axis=-1) < 60


def test_region_views_stay_in_the_tracked_box_in_both_frames(planted_regions_beton, planted,
                                                             python_pipelines, collect):
    """Planted frames: black, with coloured boxes inside white max-margin zones. A region
    view shows one valid track's colour, the same in both frames, plus white, never black
    nor another track; with no valid track it is a crop of the whole frame. At 12 px output
    many frames decode at 1/2 scale (DCT), so the box mapping to the scaled frame is tested."""
    loader = MultiViewLoader(planted_regions_beton, 4, 12, FTI_RT, order='sequential',
                             region_context=(0.0, planted.MAX_CONTEXT))
    picked_rows, scaled = set(), 0
    for epoch in range(3):
        views = collect(loader, epoch)
        for index, sample in views.items():
            names, count = planted.planted_tracks(index)
            region_a, region_b = sample[2], sample[3]
            dark = [(v.max(axis=-1) < 60).mean() for v in (region_a, region_b)]
            shown = [[n for n in planted.COLOURS if colour_mask(v, planted.COLOURS[n]).any()]
                     for v in (region_a, region_b)]
            if count == 0:
                assert min(dark) > 0.15, 'no valid track: the region is the whole frame'
                continue
            assert max(dark) < 0.05, (index, epoch, dark)
            assert shown[0] == shown[1] and len(shown[0]) == 1, (index, epoch, shown)
            assert names.index(shown[0][0]) < count, 'only rows below num_proposals'
            assert colour_mask(region_a, planted.COLOURS[shown[0][0]]).mean() > 0.1
            picked_rows.add(names.index(shown[0][0]))
            rows = [planted.BOXES_A[n] + planted.BOXES_B[n] for n in names]
            boxes = [expected_box(0, epoch, index, v, kind, 'frame_a', rows, count,
                                  planted.FRAME_H, planted.FRAME_W, (0.2, 1.0), (0.5, 1.0),
                                  (0.0, planted.MAX_CONTEXT),
                                  (math.log(3 / 4), math.log(4 / 3)))[0]
                     for v, kind in ((0, 'full'), (2, 'region'))]
            scaled += mvd.dct_denominator(np.array(boxes), 12, 12, True) > 1
    assert picked_rows == {0, 1, 2}
    assert scaled > 3


def test_region_views_equal_torchvision_crops_of_the_expected_box(region_pairs_beton,
                                                                  python_pipelines, collect,
                                                                  load_all):
    """Real video frames: every view is torchvision's resized_crop (+ flip) of the frame
    decoded by FFCV, at the box re-derived from the documented draws (region pick, context
    margin, RandomResizedCrop in the region), including boxes clipped at the frame's edge."""
    path, rows, counts = region_pairs_beton
    seed, epoch, res = 5, 1, 24
    scale, region_scale, context = (0.3, 1.0), (0.4, 0.9), (0.1, 0.6)
    loader = MultiViewLoader(path, 4, res, FTI_RT, seed=seed, order='sequential',
                             scale=scale, region_scale=region_scale, region_context=context,
                             dct_scaling=False)
    views = collect(loader, epoch)
    frames = load_all(path, {'frame_a': 'image', 'frame_b': 'image'})
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for index in (0, 1, 2, 5, 7):
        for field, ids in FIELDS.items():
            frame = torch.from_numpy(frames[field][index]).permute(2, 0, 1).float()
            for view, kind in zip(ids, ('full', 'region')):
                (top, left, h, w), flip = expected_box(
                    seed, epoch, index, view, kind, field, rows[index], counts[index],
                    frame.shape[1], frame.shape[2], scale, region_scale, context, log_ratio)
                ref = F.resized_crop(frame, int(top), int(left), int(h), int(w), [res, res],
                                     antialias=True)
                ref = F.horizontal_flip(ref) if flip else ref
                diff = np.abs(views[index][view] - ref.permute(1, 2, 0).numpy())
                assert diff.max() <= 0.51, (index, field, kind)


def test_fti_rt_gives_four_views_from_two_decodes(region_pairs_beton, counting_imdecode, collect):
    path, _, _ = region_pairs_beton
    n = Reader(path).num_samples
    options = dict(order='sequential', drop_last=False, dct_scaling=False)
    views = collect(MultiViewLoader(path, 4, 16, FTI_RT, **options), 0)
    assert len(views) == n and all(v.shape == (4, 16, 16, 3) for v in views.values())
    assert counting_imdecode['ours'] == 2 * n
    # views 0 and 1 are FTI's views 0 and 1: the same numbers, the same draws (at full decode
    # scale: with DCT scaling the scale follows the smallest crop of the decode)
    fti = collect(MultiViewLoader(path, 4, 16, FTI, **options), 0)
    assert all(np.array_equal(views[i][:2], fti[i]) for i in fti)
    assert sum(np.array_equal(v[2], v[0]) or np.array_equal(v[3], v[1])
               for v in views.values()) == 0


def test_compiled_loader_matches_python(region_pairs_beton, collect):
    """The compiled pipeline, in random order, gives the pure-Python pipeline's views; draws
    repeat for an epoch and change with the next. (Thread count invariance is the base op's
    test: the region draws are pure functions of (seed, epoch, index) too.)"""
    path, _, _ = region_pairs_beton
    compiled = MultiViewLoader(path, 4, 16, FTI_RT, seed=3, order='random', drop_last=False)
    one, again, other = collect(compiled, 1), collect(compiled, 1), collect(compiled, 2)
    Compiler.set_enabled(False)
    try:
        plain = collect(MultiViewLoader(path, 4, 16, FTI_RT, seed=3, order='sequential',
                                        drop_last=False), 1)
    finally:
        Compiler.set_enabled(True)
    assert one.keys() == plain.keys() == again.keys() == other.keys()
    for index, views in plain.items():
        assert np.array_equal(one[index], views), index
        assert np.array_equal(again[index], views)
        assert not np.array_equal(other[index][2:], views[2:])


def test_cpu_photometric_numbers_views_like_photometric_params(region_pairs_beton,
                                                               python_pipelines, collect):
    """View v of the fti_rt batch gets photometric_params' view v, the numbering the GPU
    augment uses, although each frame's op holds views (v, v + 2)."""
    path, _, _ = region_pairs_beton
    strengths = make_strengths()
    options = dict(seed=3, order='sequential', drop_last=False)
    augmented = collect(MultiViewLoader(path, 4, 16, FTI_RT, cpu_photometric=strengths,
                                        **options), 1)
    plain = collect(MultiViewLoader(path, 4, 16, FTI_RT, **options), 1)
    buf = np.empty((16, 16, 3), np.float32)
    for index, views in plain.items():
        params = photometric_params(3, 1, [index], 4, strengths)[0]
        for v in range(4):
            augment_view(views[v], params[v], blur_kernel_size(16, 16), buf,
                         np.empty_like(buf))
        assert np.array_equal(augmented[index], views), index


def test_bad_region_input_is_refused(planted_regions_beton, planted, region_pairs_beton,
                                     small_beton, tmp_path):
    path, _, _ = region_pairs_beton
    with pytest.raises(UserError, match="no 'proposals' field"):
        MultiViewLoader(planted.write_planted_regions(tmp_path / 'bare.beton', False), 4, 8, RT)
    with pytest.raises(UserError, match='indices'):
        MultiViewLoader(path, 2, 8, RT, indices=[0, 10 ** 6])
    with pytest.raises(UserError, match='region_context'):
        MultiViewLoader(path, 2, 8, RT, region_context=(0.3, 0.1))
    with pytest.raises(UserError, match='region_scale'):
        MultiViewLoader(path, 2, 8, RT, region_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match='view ids'):
        MultiViewLoader(path, 2, 8, (('frame_a', ((0, 'region'),)),
                                     ('frame_b', ((2, 'region'),))))
    with pytest.raises(ValueError, match='region views come from'):
        MultiViewLoader(small_beton, 2, 8, (('image', ((0, 'region'), (1, 'full'))),))
    with pytest.raises(ValueError, match="kind 'box'"):
        MultiViewLoader(path, 2, 8, (('frame_a', ((0, 'box'),)),))
    broken = tmp_path / 'broken.beton'
    broken.write_bytes(open(planted_regions_beton, 'rb').read())
    planted.fill_proposals(str(broken), [np.zeros((1, 9), np.float32)], [planted.MAX_ROWS + 1])
    why = f"{broken}: sample 0's 'num_proposals' is 9, outside 0..8"
    with pytest.raises(UserError, match=re.escape(why)):
        MultiViewLoader(str(broken), 2, 8, RT)


def test_context_region_and_pick():
    """Widening, outward rounding and clipping; degenerate boxes fall back to the frame; the
    pick is uniform over the valid rows."""
    box = np.array([10.5, 20.0, 30.5, 60.0], np.float32)
    assert context_region(0, 0, 0, 0, box, 0.0, 0.0, 100, 200) == (20, 10, 40, 21)
    top, left, h, w = context_region(0, 0, 0, 0, box, 0.25, 0.25, 100, 200)
    assert (top, left, h, w) == (10, 5, 60, 31)    # +-5 px in x, +-10 px in y, outwards
    edge = np.array([180.0, 90.0, 199.0, 99.0], np.float32)
    top, left, h, w = context_region(0, 0, 0, 0, edge, 0.5, 0.5, 100, 200)
    assert (top + h, left + w) == (100, 200) and (top, left) == (85, 170)
    for degenerate in ([5, 5, 5, 9], [np.nan, 0, 10, 10], [300, 300, 400, 400]):
        assert context_region(0, 0, 0, 0, np.array(degenerate, np.float32), 0.1, 0.2,
                              100, 200) == (0, 0, 100, 200)
    picks = np.bincount([pick_region(0, 0, i, 3) for i in range(3000)], minlength=3)
    assert picks.min() > 900 and len(picks) == 3
