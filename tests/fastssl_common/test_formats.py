"""The schema is what the writers write and the readers read: for each kind a tiny real file
written by its writer, read back through ``loaders/`` (or ``fastssl/`` for the rendered
sets), field names, sidecar ids and values checked; and the proposal row's named slices are
the columns the Region Tracker writer stores its boxes and confidence in."""
import json
import os

import numpy as np
import pytest
import skimage.data
from PIL import Image

from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
from fastssl.invariance_data import read_dataset
from fastssl_common.errors import UserError
from fastssl_common.formats import (
    BOX_A,
    BOX_B,
    BOX_OF_FRAME,
    CONF,
    FRAME_A,
    FRAME_B,
    FRAME_INDEX,
    IMAGES,
    INDEX_A,
    INDEX_B,
    LABEL,
    NUM_COLUMNS,
    NUM_PROPOSALS,
    PROPOSAL_COLUMNS,
    PROPOSAL_DTYPE,
    PROPOSALS,
    REGION_FIELDS,
    RENDERED_FORMAT,
    RENDERED_LABEL,
    RENDERED_MANIFEST,
    VIDEO_FRAMES,
    VIDEO_ID,
    VIDEO_PAIRS,
    load_sidecar,
)
from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import open_beton, tracked_pairs
from loaders.region_crop import RegionTable
from writers.boxes import box_iou
from writers.proposal_slots import proposal_slots
from writers.render_invariance_sets import render_sets
from writers.write_images import write_images
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs


def sidecar(path):
    with open(path + '.json') as handle:
        return json.load(handle)


def test_proposal_row_slices_name_the_columns():
    assert NUM_COLUMNS == 9 and PROPOSAL_DTYPE == np.dtype('<f4')
    assert PROPOSAL_COLUMNS[BOX_A] == ('xa0', 'ya0', 'xa1', 'ya1')
    assert PROPOSAL_COLUMNS[BOX_B] == ('xb0', 'yb0', 'xb1', 'yb1')
    assert PROPOSAL_COLUMNS[CONF] == 'confidence'
    assert BOX_OF_FRAME == {FRAME_A: BOX_A, FRAME_B: BOX_B}
    assert VIDEO_PAIRS.optional == REGION_FIELDS == (PROPOSALS, NUM_PROPOSALS)


def test_images(tmp_path):
    photos = {'cat': skimage.data.chelsea(), 'coffee': skimage.data.coffee()}
    for name, pixels in photos.items():
        for i in range(2):
            os.makedirs(tmp_path / 'src' / name, exist_ok=True)
            Image.fromarray(pixels[i * 8:]).resize((24, 16)).save(
                tmp_path / 'src' / name / f'{i}.png')
    out = str(tmp_path / 'images.beton')
    write_images(str(tmp_path / 'src'), out, max_resolution=24, workers=1, progress=False)
    assert tuple(open_beton(out, IMAGES.names).handlers) == IMAGES.names
    assert sidecar(out)['format'] == IMAGES.sidecar
    images, labels = zip(*make_eval_loader(out, batch_size=4, resolution=16))
    assert np.concatenate([np.asarray(x) for x in labels]).ravel().tolist() == [0, 0, 1, 1]
    assert images[0].shape == (4, 16, 16, 3)


def test_video_frames(tmp_path, load_all, chelsea_pan):
    src = tmp_path / 'src'
    write_sequence(src / 'a', chelsea_pan(5), boxes=False)
    write_sequence(src / 'b', chelsea_pan(3), boxes=False)
    out = str(tmp_path / 'frames.beton')
    write_video_frames(str(src), out, max_resolution=32, workers=1, progress=False)
    assert tuple(open_beton(out, VIDEO_FRAMES.names).handlers) == VIDEO_FRAMES.names
    meta = sidecar(out)
    assert meta['format'] == VIDEO_FRAMES.sidecar
    assert meta['fields'] == VIDEO_FRAMES.fields_doc()
    got = load_all(out, {FRAME_INDEX: 'int', VIDEO_ID: 'int', LABEL: 'int'})
    assert got[FRAME_INDEX].ravel().tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert got[VIDEO_ID].ravel().tolist() == [0] * 5 + [1] * 3
    np.testing.assert_array_equal(got[LABEL], got[VIDEO_ID])


@pytest.fixture(scope='module')
def pan_folder(module_tmp, chelsea_pan):
    root = module_tmp.mktemp('pan')
    write_sequence(root / 'src' / 'a', chelsea_pan(7), boxes=False)
    return str(root / 'src')


def pan_pairs(tmp_path, pan_folder, max_proposals, names):
    """The pan's pairs (gap 2), opened through loaders/ needing the schema's ``names``, which
    must be exactly the file's fields, as the sidecar says: ``(path, reader, sidecar)``."""
    out = str(tmp_path / 'pairs.beton')
    write_video_pairs(pan_folder, out, gap=2, max_proposals=max_proposals, cut_threshold=1.0,
                      max_resolution=32, workers=1, progress=False)
    reader = open_beton(out, names)
    assert tuple(reader.handlers) == names
    meta = sidecar(out)
    assert meta['format'] == VIDEO_PAIRS.sidecar
    assert meta['fields'] == VIDEO_PAIRS.fields_doc(names)
    return out, reader, meta


def test_video_pairs_without_region_fields(tmp_path, pan_folder, load_all):
    out, reader, meta = pan_pairs(tmp_path, pan_folder, 0, VIDEO_PAIRS.required)
    assert RegionTable.from_reader(reader, out) is None
    assert not tracked_pairs(out).any()
    assert meta['proposals']['fields'] == []
    got = load_all(out, {INDEX_A: 'int', INDEX_B: 'int', VIDEO_ID: 'int', LABEL: 'int'})
    assert got[INDEX_A].ravel().tolist() == [0, 2, 4]
    assert got[INDEX_B].ravel().tolist() == [2, 4, 6]
    np.testing.assert_array_equal(got[LABEL], got[VIDEO_ID])


def test_video_pairs_reserved_region_fields_filled_in_place(tmp_path, pan_folder, load_all):
    out, reader, meta = pan_pairs(tmp_path, pan_folder, 2, VIDEO_PAIRS.names)
    handler = reader.handlers[PROPOSALS]
    assert handler.dtype == PROPOSAL_DTYPE and tuple(handler.shape) == (2, NUM_COLUMNS)
    assert meta['proposals']['columns'] == list(PROPOSAL_COLUMNS)
    assert meta['proposals']['fields'] == list(REGION_FIELDS)

    row = np.zeros(NUM_COLUMNS, PROPOSAL_DTYPE)
    row[BOX_A], row[BOX_B], row[CONF] = (1, 2, 11, 12), (3, 4, 13, 14), 0.75
    offsets, count_offsets = proposal_slots(out)
    data = np.memmap(out, mode='r+', dtype=np.uint8)
    raw = row.view(np.uint8)
    data[offsets[1]:offsets[1] + raw.size] = raw
    data[count_offsets[1]:count_offsets[1] + 8] = np.array([1], '<i8').view(np.uint8)
    data.flush()
    del data
    assert tracked_pairs(out).tolist() == [False, True, False]
    table = RegionTable.from_reader(open_beton(out, ()), out)
    assert table.max_rows == 2 and table.valid.tolist() == [False, True, False]
    got = load_all(out, {PROPOSALS: 'array', NUM_PROPOSALS: 'int'})
    assert got[NUM_PROPOSALS].ravel().tolist() == [0, 1, 0]
    np.testing.assert_array_equal(got[PROPOSALS][1, 0], row)
    assert got[PROPOSALS][1, 0, BOX_A].tolist() == [1, 2, 11, 12]
    assert got[PROPOSALS][1, 0, CONF] == 0.75


def test_video_pairs_tracked_rows_use_the_named_slices(tmp_path, load_all):
    frames, truth = moving_patch_sequence(7, velocity=(4.0, 2.0))
    src = tmp_path / 'src'
    write_sequence(src / 'a', frames, boxes=False)
    out = str(tmp_path / 'tracked.beton')
    # colour-contrast ranking: its selective-search boxes fit the planted patch tightly, so the
    # IoU checks below are about which slice holds which frame's box, not about the ranking
    write_video_pairs(str(src), out, gap=6, proposals=4, max_proposals=4, max_resolution=160,
                      workers=1, proposal_ranking='contrast', progress=False)
    assert tracked_pairs(out).tolist() == [True]
    got = load_all(out, {PROPOSALS: 'array', NUM_PROPOSALS: 'int'})
    (count,) = got[NUM_PROPOSALS].ravel()
    rows = got[PROPOSALS][0, :count]
    assert np.all((rows[:, CONF] > 0) & (rows[:, CONF] <= 1))
    assert np.all(np.diff(rows[:, CONF]) <= 0)            # best confidence first
    # the planted patch (stored frames are halved): its box in frame a under BOX_A, in frame
    # b (moved by 6 steps of (4, 2) px) under BOX_B
    best = np.argmax(box_iou(truth[0] / 2, rows[:, BOX_A])[0])
    assert box_iou(truth[0] / 2, rows[best:best + 1, BOX_A])[0, 0] >= 0.7
    assert box_iou(truth[6] / 2, rows[best:best + 1, BOX_B])[0, 0] >= 0.7
    assert sidecar(out)['proposals']['status'] == 'tracked'


def test_rendered_manifest(tmp_path):
    out = tmp_path / 'sets'
    render_sets(str(out), objects=21, per_set=3, size=32, transformations=('viewpoint',))
    manifest = json.loads((out / RENDERED_MANIFEST).read_text())
    assert (manifest['format'], manifest['label']) == (RENDERED_FORMAT, RENDERED_LABEL)
    data = read_dataset('rendered', str(out))
    assert data.dataset == RENDERED_LABEL and len(data.measurements) == 4


@pytest.mark.parametrize('make, needle', [
    (lambda path: os.mkdir(path), 'is a folder, not a file'),
    # opening a pipe would wait for a writer for ever
    (lambda path: os.mkfifo(path), 'is not a regular file (a pipe, socket or device)'),
    (lambda path: os.symlink('gone.json', path), 'is a symbolic link to gone.json, which does '
                                                 'not exist'),
    (lambda path: open(path, 'wb').write(b'{"format": "\xff"}'), ': not UTF-8 text'),
    (lambda path: open(path, 'w').write('{"format": '), ': not JSON (Expecting value'),
    (lambda path: open(path, 'w').write('[1, 2]'), 'is no JSON object but a JSON array'),
    (lambda path: open(path, 'w').write('null'), 'is no JSON object but a JSON null'),
])
def test_a_sidecar_that_is_no_readable_json_object_is_named(tmp_path, make, needle):
    beton = str(tmp_path / 'data.beton')
    make(beton + '.json')
    with pytest.raises(UserError) as refused:
        load_sidecar(beton)
    message = str(refused.value)
    assert f'{beton}.json' in message and needle in message and '\n' not in message


def test_a_sidecar_is_read_beside_the_file_or_its_link_target(tmp_path):
    beton = str(tmp_path / 'data.beton')
    assert load_sidecar(beton) == (beton + '.json', None)
    json.dump({'format': IMAGES.sidecar}, open(beton + '.json', 'w'))
    assert load_sidecar(beton) == (beton + '.json', {'format': IMAGES.sidecar})
    os.symlink(beton, tmp_path / 'linked.beton')
    assert load_sidecar(str(tmp_path / 'linked.beton'))[1] == {'format': IMAGES.sidecar}
