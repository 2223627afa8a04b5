"""Fixtures of the loader tests: decode counting, float photos,
collecting a loader's views, and frame-pair .betons with tracked regions.

* ``planted_regions_beton`` (``write_planted_regions``): a .beton written directly with FFCV's
  ``DatasetWriter`` using the pair writer's field types. Its frames are black except four
  flat-coloured 32 px boxes (red, green, blue, yellow), each inside a white *zone* = the box
  widened by the largest context margin the tests use (``MAX_CONTEXT``, plus one pixel for the
  outward rounding). Frame b shows the boxes moved by (16, 16) px, the tracked motion. Each
  sample lists the four tracks in a different order with 0 to 3 of them valid, so a region
  view must show only white and the colour of a valid track, the same colour in both frames.
  The ``planted`` fixture describes this scene to the tests.
* ``region_pairs_beton``: the real video pairs .beton with proposal rows written in place
  (``fill_proposals``, through ``writers.proposal_slots``).
"""
import shutil
from types import SimpleNamespace

import ffcv.fields.rgb_image as ffcv_rgb
import numpy as np
import pytest
from ffcv.reader import Reader

import loaders.multiview_decoder as mvd


@pytest.fixture
def counting_imdecode(monkeypatch, python_pipelines):
    """Run FFCV pipelines as plain Python and count every JPEG decode call."""
    calls = {'ours': 0, 'stock': 0}

    def counter(key, real):
        def wrapped(*args):
            calls[key] += 1
            return real(*args)
        return wrapped

    monkeypatch.setattr(mvd, 'imdecode', counter('ours', mvd.imdecode))
    monkeypatch.setattr(ffcv_rgb, 'imdecode', counter('stock', ffcv_rgb.imdecode))
    yield calls


@pytest.fixture(scope='session')
def float_photos():
    """Real float32 H x W x 3 images in [0, 1] (uint8-quantised, as decoded views are)."""
    from skimage import data
    from skimage.transform import resize
    out = []
    for im in (data.astronaut(), data.chelsea(), data.coffee()):
        small = resize(im, (64, 80), anti_aliasing=True)
        out.append((np.round(small * 255) / 255).astype(np.float32))
    return out


@pytest.fixture
def collect():
    """``collect(loader, epoch)``: {sample index: its views (V, H, W, 3), a numpy copy} of
    the loader's ``epoch``."""
    def run(loader, epoch):
        loader.set_epoch(epoch)
        out = {}
        for views, indices, _ in loader:
            for v, i in zip(views.numpy(), indices.numpy()):
                out[int(i)] = v.copy()  # the batch lives in FFCV's ring buffer
        return out
    return run


# --- frame pairs with tracked regions -----------------------------------------------------
FRAME_H, FRAME_W = 128, 192
COLOURS = {'red': (220, 30, 30), 'green': (30, 200, 30), 'blue': (30, 30, 220),
           'yellow': (220, 220, 30)}
BOXES_A = {'red': (16, 16, 48, 48), 'green': (128, 16, 160, 48), 'blue': (16, 80, 48, 112),
           'yellow': (128, 80, 160, 112)}                  # x0, y0, x1, y1 (exclusive)
MOTION = (16, 16)                                          # frame b = frame a + (dx, dy)
BOXES_B = {name: (x0 + MOTION[0], y0 + MOTION[1], x1 + MOTION[0], y1 + MOTION[1])
           for name, (x0, y0, x1, y1) in BOXES_A.items()}
MAX_CONTEXT = 0.3
MAX_ROWS = 8
NUM_SAMPLES = 16


def zone(box, context=MAX_CONTEXT):
    """Pixel bounds (x0, y0, x1, y1) a region view of ``box`` may touch."""
    x0, y0, x1, y1 = box
    dx, dy = context * (x1 - x0), context * (y1 - y0)
    return (max(int(np.floor(x0 - dx)), 0), max(int(np.floor(y0 - dy)), 0),
            min(int(np.ceil(x1 + dx)), FRAME_W), min(int(np.ceil(y1 + dy)), FRAME_H))


def planted_frame(boxes):
    frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    for box in boxes.values():
        x0, y0, x1, y1 = zone(box)
        frame[y0:y1, x0:x1] = 255
    for name, (x0, y0, x1, y1) in boxes.items():
        frame[y0:y1, x0:x1] = COLOURS[name]
    return frame


def planted_tracks(index):
    """(colour names in row order, number of valid rows) of sample ``index``."""
    names = list(COLOURS)
    shift = (index + index // 4) % 4
    return names[shift:] + names[:shift], index % 4


def write_planted_regions(path, with_proposals=True):
    """Write the planted .beton (``with_proposals=False``: without the proposal fields)."""
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import DatasetWriter

    frame_a, frame_b = planted_frame(BOXES_A), planted_frame(BOXES_B)
    samples = []
    for i in range(NUM_SAMPLES):
        names, count = planted_tracks(i)
        rows = np.zeros((MAX_ROWS, 9), np.float32)
        for r, name in enumerate(names):   # rows past `count` hold real boxes too: never used
            rows[r, :4], rows[r, 4:8], rows[r, 8] = BOXES_A[name], BOXES_B[name], 0.5 + r / 10
        samples.append((frame_a, frame_b, 0, i, i + 1, 0) + ((rows, count) if with_proposals
                                                               else ()))
    image = RGBImageField(write_mode='jpg', jpeg_quality=95)
    fields = {'frame_a': image, 'frame_b': image, 'video_id': IntField(),
              'index_a': IntField(), 'index_b': IntField(), 'label': IntField()}
    if with_proposals:
        fields.update(proposals=NDArrayField(np.dtype('<f4'), (MAX_ROWS, 9)),
                      num_proposals=IntField())
    DatasetWriter(str(path), fields, num_workers=1).from_indexed_dataset(samples)
    return str(path)


def fill_proposals(path, rows, counts):
    """Write ``rows[i]`` (float32 (k, 9)) and ``counts[i]`` into sample i of ``path``."""
    from writers.proposal_slots import proposal_slots
    offsets, count_offsets = proposal_slots(path)
    data = np.memmap(path, mode='r+', dtype=np.uint8)
    for i, (sample_rows, count) in enumerate(zip(rows, counts)):
        raw = np.ascontiguousarray(sample_rows, np.float32).reshape(-1).view(np.uint8)
        data[offsets[i]:offsets[i] + raw.size] = raw
        data[count_offsets[i]:count_offsets[i] + 8] = np.array([count], '<i8').view(np.uint8)
    data.flush()
    del data


@pytest.fixture(scope='session')
def planted():
    """The planted scene of ``planted_regions_beton``, and its writers."""
    return SimpleNamespace(FRAME_H=FRAME_H, FRAME_W=FRAME_W, COLOURS=COLOURS, BOXES_A=BOXES_A,
                           BOXES_B=BOXES_B, MAX_CONTEXT=MAX_CONTEXT, MAX_ROWS=MAX_ROWS,
                           planted_tracks=planted_tracks,
                           write_planted_regions=write_planted_regions,
                           fill_proposals=fill_proposals)


@pytest.fixture(scope='session')
def planted_regions_beton(tmp_path_factory):
    """The planted frame pairs with tracks (``write_planted_regions``)."""
    return write_planted_regions(tmp_path_factory.mktemp('planted') / 'planted.beton')


@pytest.fixture(scope='session')
def region_pairs_beton(video_betons, tmp_path_factory):
    """The pairs .beton of ``video_betons`` (real video, 160 x 96 frames) with tracked regions
    filled in: sample i has ``i % 3`` valid rows, a box following the pan (6 px left per
    pair) and one at the frame's bottom-right edge. Returns (path, rows, counts)."""
    path = str(tmp_path_factory.mktemp('regions') / 'pairs.beton')
    shutil.copy(video_betons[1], path)
    rows, counts = [], []
    for i in range(Reader(path).num_samples):
        rows.append(np.array([[20 + i, 10, 60 + i, 50, 14 + i, 10, 54 + i, 50, 0.9],
                              [130, 60, 160, 96, 124, 58, 154, 94, 0.4]], np.float32))
        counts.append(i % 3)
    fill_proposals(path, rows, counts)
    return path, rows, np.array(counts)
