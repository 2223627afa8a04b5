"""The pair op: one decode per sample, torchvision-equivalent views, per-sample reproducible."""
import math

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from ffcv.fields.rgb_image import IMAGE_MODES, RandomResizedCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.memory_managers.os_cache import OSCacheManager
from ffcv.pipeline.pipeline_spec import PipelineSpec
from ffcv.reader import Reader

import loaders.multiview_decoder as mvd
from loaders.pair_loader import MultiViewLoader


def test_decodes_each_jpeg_once_for_two_views(small_beton, counting_imdecode, collect):
    n = Reader(small_beton).num_samples
    loader = MultiViewLoader(small_beton, 4, 32, num_workers=1, order='sequential')
    views = collect(loader, 0)
    assert len(views) == n and next(iter(views.values())).shape == (2, 32, 32, 3)
    assert counting_imdecode['ours'] == n

    # The stock FFCV way to get two views (two pipelines over the field) decodes twice.
    spec = lambda: PipelineSpec('image', decoder=RandomResizedCropRGBImageDecoder((32, 32)))  # noqa
    stock = Loader(small_beton, batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL,
                   pipelines={'image': spec(), 'image2': spec(), 'label': None})
    for _ in stock:
        pass
    assert counting_imdecode['stock'] == 2 * n


def test_views_equal_torchvision_resized_crop_of_their_boxes(small_raw_beton, collect):
    """With raw storage, each view is torchvision's resized_crop (+flip) of its drawn box."""
    path, _ = small_raw_beton
    reader = Reader(path)
    loader = MultiViewLoader(path, 4, 48, (('image', 3),), num_workers=1, seed=7,
                             order='sequential')
    views = collect(loader, 2)
    meta = reader.metadata['f0']
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for index in (0, 5, 11):
        h, w = int(meta[index]['height']), int(meta[index]['width'])
        image = load_raw(path, index, h, w)
        boxes = np.empty((3, 4), np.int64)
        flips = np.empty(3, np.bool_)
        mvd.draw_views(7, 2, index, 0, 0, 0, h, w, 0.2, 1.0, log_ratio[0], log_ratio[1], 0.5,
                       boxes, flips)
        for v in range(3):
            top, left, ch, cw = boxes[v]
            ref = F.resized_crop(torch.from_numpy(image).permute(2, 0, 1).float(), int(top),
                                 int(left), int(ch), int(cw), [48, 48], antialias=True)
            if flips[v]:
                ref = F.horizontal_flip(ref)
            diff = np.abs(views[index][v].astype(np.float32) - ref.permute(1, 2, 0).numpy())
            assert diff.max() <= 0.51


def load_raw(path, index, h, w):
    """Pixels of sample ``index`` read straight from the file (raw mode: no decode)."""
    reader = Reader(path)
    pointer = int(reader.metadata['f0'][index]['data_ptr'])
    table = reader.alloc_table
    row = table[table['ptr'] == pointer][0]
    with open(path, 'rb') as handle:
        handle.seek(pointer)
        data = np.frombuffer(handle.read(int(row['size'])), np.uint8)
    return data[:h * w * 3].reshape(h, w, 3).copy()


def test_same_views_for_any_worker_count_and_order(small_beton, collect):
    one = MultiViewLoader(small_beton, 4, 32, num_workers=1, seed=3, order='sequential')
    two = MultiViewLoader(small_beton, 4, 32, num_workers=2, seed=3, order='random')
    a, b = collect(one, 1), collect(two, 1)
    assert a.keys() == b.keys()
    for index in a:
        assert np.array_equal(a[index], b[index])
    again = collect(one, 1)
    assert all(np.array_equal(a[i], again[i]) for i in a)
    other_epoch = collect(one, 2)
    assert sum(np.array_equal(a[i], other_epoch[i]) for i in a) == 0
    # the two views of one sample are independent draws
    assert sum(np.array_equal(v[0], v[1]) for v in a.values()) == 0


def test_dct_scale_is_the_largest_that_never_upsamples():
    boxes = np.array([[0, 0, 130, 140], [0, 0, 70, 90]])
    assert mvd.dct_denominator(boxes, 32, 32, True) == 2  # 70 / 2 >= 32, 70 / 4 < 32
    assert mvd.dct_denominator(boxes, 16, 16, True) == 4
    assert mvd.dct_denominator(boxes, 8, 8, True) == 8
    assert mvd.dct_denominator(boxes, 40, 40, True) == 1
    assert mvd.dct_denominator(boxes, 8, 8, False) == 1


def test_dct_scaled_views_stay_close_to_full_decode(small_beton, collect):
    """At 12 px output every crop allows a 1/2+ scale decode; views barely change."""
    scaled = MultiViewLoader(small_beton, 4, 12, num_workers=1, seed=1, order='sequential')
    full = MultiViewLoader(small_beton, 4, 12, num_workers=1, seed=1, order='sequential',
                           dct_scaling=False)
    a, b = collect(scaled, 0), collect(full, 0)
    diffs = [np.abs(a[i].astype(int) - b[i].astype(int)).mean() for i in a]
    assert 0 < max(diffs) and np.mean(diffs) < 4


def test_video_variants_decode_each_stored_frame_once(video_betons, counting_imdecode, collect):
    """FTI: two decodes per pair (frame a, frame b), one view each; the frames baseline: one
    decode per frame for its two views."""
    frames, pairs = video_betons
    fti = MultiViewLoader(pairs, 4, 16, (('frame_a', 1), ('frame_b', 1)), num_workers=1,
                          order='sequential')
    n_pairs = len(collect(fti, 0))
    assert n_pairs == Reader(pairs).num_samples
    assert counting_imdecode['ours'] == 2 * n_pairs
    counting_imdecode['ours'] = 0
    baseline = MultiViewLoader(frames, 4, 16, num_workers=1, order='sequential')
    views = collect(baseline, 0)
    assert counting_imdecode['ours'] == len(views) == Reader(frames).num_samples
    assert all(v.shape[0] == 2 for v in views.values())


def test_decode_costs_are_the_stored_jpeg_sizes(small_beton):
    reader = Reader(small_beton)
    manager = OSCacheManager(reader)
    decode_costs = mvd.make_decode_costs(manager.compile_reader())
    metadata = reader.metadata['f0']
    indices = np.array([5, 0, 11], np.uint64)
    with manager.schedule_epoch(indices) as context:
        costs = decode_costs(indices, metadata, context.state)
    table = reader.alloc_table
    sizes = [int(table[table['ptr'] == metadata[i]['data_ptr']][0]['size']) for i in indices]
    assert metadata['mode'][indices].tolist() == [IMAGE_MODES['jpg']] * 3
    assert costs.tolist() == sizes
