"""A .beton cut short is refused at open; ``python -m loaders.verify`` checks hashes and
decodes every sample (loaders/integrity.py, fastssl_common/beton_file.py)."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastssl_common.beton_file import required_size
from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader
from loaders.integrity import check_size, verify
from loaders.pair_loader import MultiViewLoader, open_beton
from writers.write_images import write_images

TRUNCATED = r'is truncated: \d+ bytes, needs at least \d+'


def verify_cli(repo, *args):
    """``python -m loaders.verify ARGS`` as a user runs it; its CompletedProcess."""
    return subprocess.run([sys.executable, '-m', 'loaders.verify', *map(str, args)],
                          capture_output=True, text=True, cwd=repo, timeout=300)


@pytest.fixture
def written(small_beton, tmp_path):
    """A copy of the 16-photo .beton and its sidecar (as its writer left them)."""
    path = tmp_path / 'copy.beton'
    shutil.copy(small_beton, path)
    shutil.copy(small_beton + '.json', str(path) + '.json')
    return path


def cut(path, nbytes):
    with open(path, 'r+b') as handle:
        handle.truncate(os.path.getsize(path) - nbytes)


def test_a_whole_file_is_exactly_as_long_as_its_header_says(small_beton, video_betons):
    for path in (small_beton, *video_betons):
        layout = required_size(path)
        assert layout.size == layout.required
        check_size(path)
        summary = verify(path, progress=False)     # frames, pairs (and their proposal arrays)
        assert summary['pages'] >= 2 and summary['decoded'] >= summary['samples']


def test_a_file_missing_its_last_kilobytes_is_refused_by_every_opener(
        written, repo, assert_one_line_error):
    size = os.path.getsize(written)
    cut(written, 4096)
    needed = f'{size - 4096} bytes, needs at least {size}'
    for open_it in (lambda: open_beton(str(written)),
                    lambda: MultiViewLoader(str(written), 4, 32),
                    lambda: make_eval_loader(str(written), 4, 32),
                    lambda: check_size(str(written))):
        with pytest.raises(UserError, match=TRUNCATED) as err:
            open_it()
        assert str(err.value) == f'{written} is truncated: {needed}'
    assert_one_line_error(verify_cli(repo, written), written, 'is truncated', needed)


def test_even_a_few_bytes_short_is_refused(written):
    cut(written, 1)
    with pytest.raises(UserError, match=TRUNCATED):
        check_size(str(written))


def test_a_foreign_or_unfinished_file_is_not_a_beton(tmp_path, small_beton):
    junk = tmp_path / 'junk.beton'
    # it read 'format version 19280, FFCV reads 2', as if from another FFCV
    junk.write_bytes(b'PK\3\4' + bytes(200))
    with pytest.raises(UserError, match=r'is not a readable .beton file \(it does not begin '
                                        r'with an FFCV header\)'):
        check_size(str(junk))
    junk.write_bytes(b'\1\0' + bytes(200))
    with pytest.raises(UserError, match=r'is not a readable .beton file \(format version 1, '
                                        r'FFCV reads 2\)'):
        check_size(str(junk))
    unfinished = tmp_path / 'unfinished.beton'
    data = bytearray(open(small_beton, 'rb').read())
    data[16:24] = bytes(8)             # alloc_table_ptr, as FFCV leaves it until it finishes
    unfinished.write_bytes(bytes(data))
    with pytest.raises(UserError, match='its writer did not finish'):
        check_size(str(unfinished))


def test_a_damaged_field_table_is_not_a_beton(tmp_path, small_beton):
    from ffcv.types import FieldDescType, HeaderType

    damaged = tmp_path / 'damaged.beton'
    data = bytearray(open(small_beton, 'rb').read())
    data[HeaderType.itemsize + FieldDescType.fields['name'][1]] = 0xFF   # the first field's name
    damaged.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r'is not a readable .beton file \(damaged field table'):
        check_size(str(damaged))


@pytest.mark.parametrize('edit, entry', [
    (lambda s: s.update(integrity='abc'), "'integrity'"),
    (lambda s: s['integrity'].pop('size'), "'integrity.size'"),
    (lambda s: s['integrity'].pop('page_sha256'), "'integrity.page_sha256'"),
    (lambda s: s['integrity'].update(page_size='8388608'), "'integrity.page_size'"),
    (lambda s: s['integrity'].update(page_size=0), "'integrity.page_size'"),
    # a page hash fewer: it used to say "page 1 differs (0 of 1 pages differ)"
    (lambda s: s['integrity']['page_sha256'].pop(), "'integrity.page_sha256' holds 2 hashes "
                                                    "where its size and page size make 3 pages"),
])
def test_an_edited_integrity_entry_is_named(written, repo, assert_one_line_error, edit, entry):
    sidecar = json.load(open(f'{written}.json'))
    edit(sidecar)
    json.dump(sidecar, open(f'{written}.json', 'w'))
    why = entry if 'holds' in entry else f'missing or invalid {entry}'
    assert_one_line_error(verify_cli(repo, written), f'sidecar {written}.json: {why}')


def test_a_sidecar_that_is_no_json_object_is_named(written):
    json.dump(['a', 'list'], open(f'{written}.json', 'w'))
    with pytest.raises(UserError, match=r'sidecar .*copy.beton.json is no JSON object but a '
                                        r'JSON array \(damaged or edited\?\)'):
        verify(str(written), progress=False)


@pytest.mark.parametrize('sidecar, needle', [
    ({}, "is not a fastssl writer's sidecar (its 'format' is None"),
    ({'integrity': None}, "is not a fastssl writer's sidecar"),
    ({'format': 'fastssl-images/1', 'num_samples': 'x'}, "invalid 'num_samples'"),
    ({'format': 'fastssl-video-pairs/1'}, 'records a fastssl-video-pairs/1 file (frame_a, '),
])
def test_a_sidecar_no_writer_wrote_is_not_taken_for_an_older_one(written, sidecar, needle):
    """Each lacks the hashes, and passed with the note meant for sidecars written before the
    writers recorded them."""
    json.dump(sidecar, open(f'{written}.json', 'w'))
    with pytest.raises(UserError) as refused:
        verify(str(written), progress=False)
    assert f'{written}.json' in str(refused.value) and needle in str(refused.value)


def test_another_files_sidecar_of_the_same_size_is_named_as_such(written, small_beton,
                                                                 tmp_path):
    """Every page differs: not damage, but the hashes of another file (here the same photos
    written at another resolution, padded to the same size) beside this one."""
    from writers.write_images import write_images

    other = tmp_path / 'other.beton'
    write_images(json.load(open(f'{written}.json'))['options']['src'], str(other),
                 max_resolution=48, workers=1, progress=False)
    sidecar = json.load(open(f'{other}.json'))
    sidecar['integrity']['size'] = os.path.getsize(written)
    sidecar['integrity']['page_sha256'] += ['0' * 64] * (
        -(-os.path.getsize(written) // sidecar['integrity']['page_size'])
        - len(sidecar['integrity']['page_sha256']))
    json.dump(sidecar, open(f'{written}.json', 'w'))
    with pytest.raises(UserError, match=r'pages differ; every page: the sidecar of another '
                                        r'file, copied or left beside it\?\)$'):
        verify(str(written), progress=False)


def test_verify_takes_a_path_object_and_names_folders(written, tmp_path):
    from pathlib import Path

    assert verify(Path(written), progress=False)['samples'] == 16
    with pytest.raises(UserError, match=f'dataset file {tmp_path} is a folder, not a file'):
        verify(tmp_path, progress=False)
    os.remove(f'{written}.json')
    os.mkdir(f'{written}.json')
    with pytest.raises(UserError, match=r'sidecar .*copy.beton.json is a folder, not a file'):
        verify(str(written), progress=False)


def test_verify_checks_size_hashes_and_every_sample(small_beton, repo):
    summary = verify(small_beton, progress=False)
    sidecar = json.load(open(small_beton + '.json'))['integrity']
    assert summary['size'] == sidecar['size'] == os.path.getsize(small_beton)
    assert summary['pages'] == len(sidecar['page_sha256']) >= 2
    assert summary['decoded'] == summary['samples'] == 16
    result = verify_cli(repo, small_beton)
    assert result.returncode == 0, result.stderr
    assert f'{small_beton}: ok, 16 samples' in result.stdout
    assert 'SHA-256' in result.stdout and 'page hashes match' in result.stdout
    assert '\r' not in result.stdout + result.stderr
    assert 'decoding: 100%' in result.stdout       # progress as lines off a terminal


def test_verify_names_the_damaged_page(written, repo, assert_one_line_error):
    layout = required_size(str(written))
    offset = layout.page_size + 100                 # in the first data page
    with open(written, 'r+b') as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x40]))
    check_size(str(written))                        # same size: only the hashes can tell
    with pytest.raises(UserError, match='page 1 .* differs from the hash its sidecar records'):
        verify(str(written), progress=False)
    assert_one_line_error(verify_cli(repo, written, '--quiet'), written, 'page 1')


def test_an_older_sidecar_gets_size_and_decode_checks_and_says_so(written, repo):
    sidecar = str(written) + '.json'
    doc = json.load(open(sidecar))
    del doc['integrity']
    json.dump(doc, open(sidecar, 'w'))
    summary = verify(str(written), progress=False)
    assert summary['hashes'] is None and 'written before the writers recorded' in summary['note']
    result = verify_cli(repo, written, '--quiet')
    assert result.returncode == 0
    assert 'note: the sidecar' in result.stderr and 'checked the size and every sample' \
        in result.stderr
    assert f'{written}: ok' in result.stdout


def test_an_image_that_does_not_decode_is_named(written, repo, assert_one_line_error):
    os.remove(str(written) + '.json')               # no hashes: decoding must find it
    from ffcv.reader import Reader

    reader = Reader(str(written))
    pointer = int(reader.metadata['f0']['data_ptr'][5])
    with open(written, 'r+b') as handle:            # the JPEG's start-of-image marker
        handle.seek(pointer)
        handle.write(b'\0\0\0\0')
    with pytest.raises(UserError, match="sample 5's 'image' does not decode"):
        verify(str(written), progress=False)
    assert_one_line_error(verify_cli(repo, written, '--quiet'), "sample 5's 'image'")


def test_an_image_of_an_unknown_storage_mode_is_named(written):
    """The loaders read any mode but jpg as raw pixels: verify must not pass such a file."""
    from ffcv.types import get_metadata_type

    os.remove(str(written) + '.json')
    layout = required_size(str(written))
    metadata = np.memmap(written, get_metadata_type(list(layout.handlers)), mode='r+',
                         offset=layout.metadata_start, shape=(layout.num_samples,))
    metadata['f0']['mode'][3] = 255
    metadata.flush()
    del metadata
    with pytest.raises(UserError, match="sample 3's 'image' has storage mode 255, neither"):
        verify(str(written), progress=False)


def test_sidecar_records_size_and_hashes_of_what_was_written(tmp_path, small_beton):
    import hashlib

    doc = json.load(open(small_beton + '.json'))['integrity']
    data = open(small_beton, 'rb').read()
    assert doc['size'] == len(data) and doc['sha256'] == hashlib.sha256(data).hexdigest()
    page = doc['page_size']
    assert page == required_size(small_beton).page_size
    assert doc['page_sha256'] == [hashlib.sha256(data[k:k + page]).hexdigest()
                                  for k in range(0, len(data), page)]


def test_a_missing_file_is_one_line(tmp_path, repo, assert_one_line_error):
    assert_one_line_error(verify_cli(repo, tmp_path / 'none.beton'), 'none.beton',
                          'does not exist')
    with pytest.raises(UserError, match='dataset file .*none.beton does not exist'):
        verify(str(tmp_path / 'none.beton'))


def test_images_written_with_several_workers_verify(tmp_path, small_beton):
    """Several FFCV writer workers fill pages side by side, JPEG and raw images mixed; the
    layout still adds up and every image decodes."""
    src = json.load(open(small_beton + '.json'))['options']['src']
    out = tmp_path / 'w.beton'
    write_images(src, str(out), max_resolution=64, workers=2, write_mode='proportion',
                 progress=False)
    summary = verify(str(out), progress=False)
    assert summary['decoded'] == 16 and summary['pages'] >= 3


def test_ctrl_c_stops_verify_at_once(tmp_path, repo):
    """Every decode used to be queued up front, and Ctrl-C waited for the queue to drain (a
    12,000-sample file ended 11 s after it): only a few chunks may be queued, and those
    running stop at their next sample."""
    import signal
    import time

    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / 'a.png')      # 512 x 512
    (tmp_path / 'list.txt').write_text('a.png 0\n' * 3000)                  # ~4 s to decode
    many = tmp_path / 'many.beton'
    write_images(str(tmp_path / 'list.txt'), str(many), workers=2, progress=False)
    child = subprocess.Popen(
        [sys.executable, '-m', 'loaders.verify', str(many)], cwd=repo, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # as in a shell
    try:
        started = any(line.startswith('decoding:  10%') for line in child.stdout)
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        said = child.stderr.readline()
        said_after = time.monotonic() - sent
        child.wait(60)
        exited_after = time.monotonic() - sent
    finally:
        child.kill()
    assert started, 'the premise: interrupted while decoding'
    assert child.returncode == 130 and said == 'interrupted\n' and not child.stderr.read()
    assert said_after < 1.5, f'stopped {said_after:.1f} s after Ctrl-C'
    assert exited_after < 3, f'exited {exited_after:.1f} s after Ctrl-C'


# ---------------------------------------------------------------------------- proposals

@pytest.fixture
def tracked(region_pairs_beton, planted, tmp_path):
    """``tracked(edit)``: a copy of the real pairs .beton with tracked regions (sample i has
    ``i % 3`` valid rows, 32 rows of room) after ``edit(rows, counts)`` changed its rows."""
    source, rows, counts = region_pairs_beton

    def copy(edit):
        path = str(tmp_path / 'pairs.beton')
        shutil.copy(source, path)
        new_rows, new_counts = [r.copy() for r in rows], counts.copy()
        edit(new_rows, new_counts)
        planted.fill_proposals(path, new_rows, new_counts)
        return path
    return copy


def test_verify_passes_proposals_that_keep_the_contract(tracked):
    def beyond_num_proposals(rows, counts):      # only rows [0, num_proposals) are read
        rows[1][1] = np.nan
    path = tracked(beyond_num_proposals)
    assert verify(path, progress=False)['samples'] > 3


@pytest.mark.parametrize('sample, row, column, value, problem', [
    (2, 1, 3, float('nan'), 'is not finite'),
    (1, 0, 6, 161.0, 'has a box outside its 160x96 frame_b'),
    (2, 0, 8, 1.5, 'has confidence 1.5, outside [0, 1]'),
])
def test_verify_names_a_proposal_row_that_breaks_the_contract(
        tracked, repo, assert_one_line_error, sample, row, column, value, problem):
    def damage(rows, counts):
        rows[sample][row, column] = value
    path = tracked(damage)
    with pytest.raises(UserError, match=f"sample {sample}'s 'proposals' row {row} "
                                        rf'\[.*\] {re.escape(problem)}$'):
        verify(path, progress=False)
    assert_one_line_error(verify_cli(repo, path, '--quiet'), path, problem)


def test_verify_names_a_num_proposals_outside_the_array(tracked, repo, assert_one_line_error):
    def damage(rows, counts):
        counts[1] = 200
    path = tracked(damage)
    assert_one_line_error(verify_cli(repo, path, '--quiet'), path,
                          "sample 1's 'num_proposals' is 200, outside 0..32")


def test_verify_names_a_proposals_field_of_another_shape(tmp_path, repo, assert_one_line_error):
    """Not our writers' file: the contract's columns cannot be read, so it is named (the
    row check would end in an IndexError traceback)."""
    import skimage.data
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import DatasetWriter

    frame = np.ascontiguousarray(skimage.data.astronaut()[::8, ::8])
    path = str(tmp_path / 'other.beton')
    fields = {'frame_a': RGBImageField(), 'frame_b': RGBImageField(),
              'proposals': NDArrayField(np.dtype('<f4'), (4, 4)), 'num_proposals': IntField()}
    DatasetWriter(path, fields, num_workers=1).from_indexed_dataset(
        [(frame, frame, np.zeros((4, 4), np.float32), 1)] * 2)
    assert_one_line_error(verify_cli(repo, path, '--quiet'), path,
                          "field 'proposals' is declared float32 (4, 4), not float32 "
                          "(max_proposals, 9)")
