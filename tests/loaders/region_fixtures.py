"""Frame-pair .betons with tracked regions, for the region-crop tests.

* ``write_planted_regions``: a .beton written directly with FFCV's ``DatasetWriter`` using the
  pair writer's field types. Its frames are black except four flat-coloured 32 px boxes (red,
  green, blue, yellow), each inside a white *zone* = the box widened by the largest context
  margin the tests use (``MAX_CONTEXT``, plus one pixel for the outward rounding). Frame b shows
  the boxes moved by (16, 16) px, the tracked motion. Each sample lists the four tracks in a
  different order with 0 to 3 of them valid, so a region view must show only white and the
  colour of a valid track, the same colour in both frames.
* ``fill_proposals``: write proposal rows into a .beton from the real pair writer, in place
  (``writers.write_video_pairs.proposal_slots``).
"""
import numpy as np

from writers.write_video_pairs import proposal_slots

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
    offsets, count_offsets = proposal_slots(path)
    data = np.memmap(path, mode='r+', dtype=np.uint8)
    for i, (sample_rows, count) in enumerate(zip(rows, counts)):
        raw = np.ascontiguousarray(sample_rows, np.float32).reshape(-1).view(np.uint8)
        data[offsets[i]:offsets[i] + raw.size] = raw
        data[count_offsets[i]:count_offsets[i] + 8] = np.array([count], '<i8').view(np.uint8)
    data.flush()
    del data
