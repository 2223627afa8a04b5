"""``inspect_pairs.py`` on a damaged pairs ``.beton``: every stored value it reads (allocation
table, frame pointers, sizes and modes, ``num_proposals``, proposal rows) ends in one
``error:`` line naming the file and the sample and suggesting ``python -m loaders.verify``,
exit status 2, and nothing written to ``--out``. The files are written by the real writer
and damaged in place, as a disk or a size-keeping copy would."""
import json
import os
import shutil

import numpy as np
import pytest

from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
from fastssl_common.errors import UserError
from fastssl_common.formats import FRAME_A, FRAME_B, NUM_PROPOSALS, PROPOSALS
from writers.inspect_pairs import inspect_pairs
from writers.write_video_pairs import write_video_pairs

MAX_PROPOSALS = 8
VERIFY = 'python -m loaders.verify'


@pytest.fixture(scope='module')
def pairs(module_tmp):
    """A small pairs .beton with tracked proposals (3 pairs of 160 x 120 frames)."""
    root = module_tmp.mktemp('inspect_damage')
    frames, _ = moving_patch_sequence(20, velocity=(3.0, 1.5))
    write_sequence(root / 'src' / 'clip', frames, boxes=False)
    out = str(root / 'pairs.beton')
    write_video_pairs(str(root / 'src'), out, gap=6, proposals=4, max_proposals=MAX_PROPOSALS,
                      max_resolution=160, track_resolution=320, workers=1, progress=False)
    return out


class Stored:
    """Where a .beton's stored values lie (FFCV's own header, metadata and table), to damage
    a copy in place."""

    def __init__(self, path):
        from ffcv.reader import Reader
        from ffcv.types import HeaderType

        self.path, reader = path, Reader(path)
        self.num_samples = int(reader.num_samples)
        self.metadata = reader.metadata
        self.table_ptr = int(reader.header['alloc_table_ptr'])
        self.table = reader.alloc_table
        self.names = reader.field_names
        self.row_start = HeaderType.itemsize + reader.field_descriptors.nbytes
        self.row_size = reader.metadata_type.itemsize

    def column(self, name):
        return self.metadata[f'f{self.names.index(name)}']

    def meta_offset(self, index, name, part=None):
        """Byte offset of sample ``index``'s metadata for field ``name`` (its ``part``)."""
        field = self.metadata.dtype.fields[f'f{self.names.index(name)}']
        offset = self.row_start + index * self.row_size + field[1]
        return offset + (field[0].fields[part][1] if part else 0)

    def pointer(self, index, name):
        meta = self.column(name)[index]
        return int(meta['data_ptr'] if name in (FRAME_A, FRAME_B) else meta)

    def table_row(self, index, name):
        """Position in the allocation table of sample ``index``'s ``name`` allocation."""
        return int(np.flatnonzero(self.table['ptr'] == self.pointer(index, name))[0])

    def write(self, offset, value, dtype):
        with open(self.path, 'r+b') as handle:
            handle.seek(offset)
            handle.write(np.asarray(value, dtype).tobytes())

    def proposals(self, index):
        return np.fromfile(self.path, np.float32, MAX_PROPOSALS * 9,
                           offset=self.pointer(index, PROPOSALS)).reshape(MAX_PROPOSALS, 9)

    def with_tracks(self):
        return [int(i) for i in np.flatnonzero(self.column(NUM_PROPOSALS) > 0)]


@pytest.fixture
def copy(pairs, tmp_path):
    path = tmp_path / 'pairs.beton'
    shutil.copy(pairs, path)
    return Stored(str(path))


def check_refused(stored, tmp_path, *needles):
    """inspect_pairs refuses the file with one line naming it, every needle and the verify
    command, and leaves no --out folder, no staging folder."""
    out = tmp_path / 'new' / 'look'
    with pytest.raises(UserError) as caught:
        inspect_pairs(stored.path, out, pairs=16, per_sheet=2)
    message = str(caught.value)
    assert '\n' not in message and message.startswith(f'{stored.path}: ')
    for needle in (*needles, f'{VERIFY} {stored.path}'):
        assert needle in message, message
    assert sorted(os.listdir(tmp_path)) == ['pairs.beton']
    return message


def test_sample_zero_has_tracks_and_the_intact_copy_is_drawn(copy, tmp_path):
    """The fixture's premise: the undamaged copy is inspected; some sample has tracks."""
    assert copy.with_tracks() and copy.num_samples == 3
    summary = inspect_pairs(copy.path, tmp_path / 'look', pairs=16)
    assert summary['tracks'] > 0 and summary['shown'] == [0, 1, 2]


def test_random_allocation_table_names_the_first_sample(copy, tmp_path, run_script,
                                                        assert_one_line_error):
    # the audit's case: the table (written last) overwritten with random bytes
    size = os.path.getsize(copy.path) - copy.table_ptr
    copy.write(copy.table_ptr, np.random.default_rng(0).integers(0, 256, size), np.uint8)
    check_refused(copy, tmp_path, f"sample 0's {FRAME_A} points at no allocation of its own",
                  'damaged metadata or allocation table?')
    result = run_script('writers/inspect_pairs.py', copy.path, '--out', tmp_path / 'new')
    assert_one_line_error(result, copy.path, f"sample 0's {FRAME_A} points at no allocation",
                          VERIFY)
    assert sorted(os.listdir(tmp_path)) == ['pairs.beton']


def test_frame_pointer_out_of_the_file_names_the_sample(copy, tmp_path):
    copy.write(copy.meta_offset(2, FRAME_B, 'data_ptr'), 1 << 40, '<u8')
    check_refused(copy, tmp_path, f"sample 2's {FRAME_B} points at no allocation of its own")


def test_frame_pointer_to_another_samples_image_names_the_sample(copy, tmp_path):
    # a pointer that still hits an allocation, but sample 0's: the wrong picture otherwise
    copy.write(copy.meta_offset(1, FRAME_A, 'data_ptr'), copy.pointer(0, FRAME_A), '<u8')
    check_refused(copy, tmp_path, f"sample 1's {FRAME_A} points at no allocation of its own")


@pytest.mark.parametrize('size', [1 << 62, (1 << 64) - 8])      # huge, and -8 as int64
def test_allocation_past_the_data_pages_names_the_sample(copy, tmp_path, size):
    row = copy.table_row(1, FRAME_B)
    copy.write(copy.table_ptr + row * 24 + 16, size, '<u8')   # (sample_id, ptr, size)
    check_refused(copy, tmp_path, f"sample 1's {FRAME_B} (bytes {copy.pointer(1, FRAME_B)}..",
                  'lies outside the data pages')


def test_proposal_allocation_of_the_wrong_size_names_the_sample(copy, tmp_path):
    row = copy.table_row(2, PROPOSALS)
    copy.write(copy.table_ptr + row * 24 + 16, 16, '<u8')
    check_refused(copy, tmp_path, f"sample 2's {PROPOSALS} holds 16 bytes, not the "
                                  f"{MAX_PROPOSALS * 9 * 4} of its declared array")


@pytest.mark.parametrize('count', [MAX_PROPOSALS + 1, -1, 1 << 40])
def test_num_proposals_outside_the_array_names_the_sample(copy, tmp_path, count):
    copy.write(copy.meta_offset(1, NUM_PROPOSALS), count, '<i8')
    check_refused(copy, tmp_path,
                  f"sample 1's {NUM_PROPOSALS} is {count}, outside 0..{MAX_PROPOSALS}")


def test_nan_proposals_name_the_sample_and_keep_an_earlier_run(copy, tmp_path, run_script,
                                                               assert_one_line_error):
    # the audit's case: every proposal array overwritten with NaN
    look = tmp_path / 'look'
    inspect_pairs(copy.path, look, pairs=16)
    before = {name: (look / name).read_bytes() for name in os.listdir(look)}
    for index in range(copy.num_samples):
        copy.write(copy.pointer(index, PROPOSALS), np.full(MAX_PROPOSALS * 9, np.nan),
                   np.float32)
    first = copy.with_tracks()[0]
    result = run_script('writers/inspect_pairs.py', copy.path, '--out', look)
    assert_one_line_error(result, copy.path, f"sample {first}'s {PROPOSALS} row 0 [nan",
                          'is not finite', VERIFY)
    # the earlier complete run is left as it was: no sheet of this run, no staging folder
    assert {name: (look / name).read_bytes() for name in os.listdir(look)} == before
    assert sorted(os.listdir(tmp_path)) == ['look', 'pairs.beton']


@pytest.mark.parametrize('column, value, problem', [
    (2, 1e30, f'has a box outside its 160x120 {FRAME_A}'),          # x1 of frame a
    (7, 121.0, f'has a box outside its 160x120 {FRAME_B}'),         # y1 of frame b
    (4, -3.0, f'has a box outside its 160x120 {FRAME_B}'),          # x0 of frame b
    (8, 5.0, 'has confidence 5, outside [0, 1]'),
    (1, np.inf, 'is not finite'),
])
def test_out_of_range_proposal_names_the_sample_and_row(copy, tmp_path, column, value,
                                                        problem):
    index = copy.with_tracks()[-1]
    assert copy.column(FRAME_A)[index]['width'] == 160      # the premise of the messages
    rows = copy.proposals(index)
    last = int(copy.column(NUM_PROPOSALS)[index]) - 1
    rows[last, column] = value
    copy.write(copy.pointer(index, PROPOSALS), rows, np.float32)
    check_refused(copy, tmp_path, f"sample {index}'s {PROPOSALS} row {last} [", problem)


def test_frame_size_unlike_its_metadata_names_the_sample(copy, tmp_path):
    width = int(copy.column(FRAME_B)[0]['width'])
    height = int(copy.column(FRAME_B)[0]['height'])
    copy.write(copy.meta_offset(0, FRAME_B, 'width'), width + 40, '<u2')
    check_refused(copy, tmp_path, f"sample 0's {FRAME_B} decodes to {width}x{height}, its "
                                  f"metadata states {width + 40}x{height}")


def test_unknown_storage_mode_names_the_sample(copy, tmp_path):
    copy.write(copy.meta_offset(2, FRAME_A, 'mode'), 7, '<u1')
    check_refused(copy, tmp_path, f"sample 2's {FRAME_A} has storage mode 7, neither jpg "
                                  f"nor raw")


# ---------------------------------------------------------------------------- sheet too large

def write_strip_pairs(root, frame_size, count):
    """A pairs .beton (no proposal fields) of ``count - 1`` pairs of ``frame_size`` frames."""
    frames, _ = moving_patch_sequence(count, frame_size=frame_size, patch_size=(24, 24),
                                      start=(6.0, 6.0), velocity=(1.0, 1.0))
    write_sequence(root / 'src' / 'clip', frames, boxes=False)
    out = str(root / 'pairs.beton')
    write_video_pairs(str(root / 'src'), out, gap=1, max_proposals=0, max_resolution=0,
                      workers=1, progress=False)
    return out


def test_a_jpeg_sheet_too_tall_is_refused_before_drawing(tmp_path, run_script,
                                                         assert_one_line_error):
    """30 rows at --height 2160 make a sheet 65,580 px tall, past libjpeg's 65,500: OpenCV's
    failure used to end in an AttributeError traceback, once the sheet was drawn. (Narrow
    frames keep that sheet small in memory.)"""
    beton = write_strip_pairs(tmp_path, (48, 320), 32)
    out = tmp_path / 'look'
    result = run_script('writers/inspect_pairs.py', beton, '--out', out, '--pairs', 30,
                        '--per-sheet', 30, '--height', 2160, '--format', 'jpg')
    assert_one_line_error(result, '--format jpg', '--per-sheet 30', '--height 2160',
                          '65580 px tall', '--format png')
    assert not out.exists()
    summary = inspect_pairs(beton, out, pairs=30, per_sheet=15, height=2160,
                            image_format='jpg')      # 15 rows a sheet: 32,790 px
    assert summary['sheets'] == ['sheet_00.jpg', 'sheet_01.jpg']


def test_a_jpeg_sheet_too_wide_is_refused_before_drawing(tmp_path):
    beton = write_strip_pairs(tmp_path, (640, 36), 4)
    with pytest.raises(UserError, match=r'^--format jpg: a pair at --height 2000 would be '
                                        r'71118 px wide, .* use --format png or a lower '
                                        r'--height$'):      # 2 x 640 x 2000 / 36 + 6
        inspect_pairs(beton, tmp_path / 'look', per_sheet=1, height=2000, image_format='jpg')
    assert not (tmp_path / 'look').exists()


def test_a_sheet_the_encoder_refuses_is_one_line(pairs, tmp_path, monkeypatch):
    """Whatever else OpenCV cannot encode (its flag is False) is a UserError, not a
    traceback; nothing is written."""
    import cv2

    monkeypatch.setattr(cv2, 'imencode', lambda *args: (False, ()))
    with pytest.raises(UserError, match=r'^cannot encode sheet_00.png \(\d+x\d+ px\) as png$'):
        inspect_pairs(pairs, tmp_path / 'look')
    assert os.listdir(tmp_path) == []


@pytest.fixture
def copy_with_sidecar(pairs, tmp_path):
    path = tmp_path / 'pairs.beton'
    shutil.copy(pairs, path)
    shutil.copy(pairs + '.json', str(path) + '.json')
    return Stored(str(path))


def test_damage_that_still_decodes_is_found_by_the_page_hash(copy_with_sidecar, tmp_path):
    """Bytes changed inside a JPEG's entropy-coded data decode to a wrong picture of the right
    size: the SHA-256 the sidecar records for the drawn samples' pages finds it first."""
    stored = copy_with_sidecar
    start = stored.pointer(2, FRAME_B)
    size = int(stored.table['size'][stored.table_row(2, FRAME_B)])
    with open(stored.path, 'r+b') as handle:
        handle.seek(start + size // 2)
        handle.write(bytes(32))
    page_size = json.load(open(stored.path + '.json'))['integrity']['page_size']
    page = start // page_size
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserError) as caught:
        inspect_pairs(stored.path, tmp_path / 'new' / 'look', pairs=16, per_sheet=2)
    message = str(caught.value)
    assert '\n' not in message and message.startswith(f'{stored.path}: ')
    assert f'bytes {page * page_size}..' in message
    assert 'differ from the SHA-256 its sidecar records' in message and VERIFY in message
    assert sorted(os.listdir(tmp_path)) == before
    # without its sidecar the same file is drawn: nothing to check it against
    os.remove(stored.path + '.json')
    assert inspect_pairs(stored.path, tmp_path / 'look', pairs=16)['shown'] == [0, 1, 2]


@pytest.mark.parametrize('content, needle', [
    ('{bad', 'not JSON'),
    ('[]', 'is no JSON object'),
])
def test_a_sidecar_that_cannot_be_read_is_named(copy_with_sidecar, tmp_path, content, needle):
    """Not taken for a missing one: its proposal ranking and foreground share would go
    unreported without a word."""
    stored = copy_with_sidecar
    open(stored.path + '.json', 'w').write(content)
    with pytest.raises(UserError) as caught:
        inspect_pairs(stored.path, tmp_path / 'new' / 'look', pairs=16)
    message = str(caught.value)
    assert '\n' not in message and f'{stored.path}.json' in message and needle in message
    assert not os.path.exists(tmp_path / 'new')
