"""A .beton cut short is refused at open; ``python -m loaders.verify`` checks hashes and
decodes every sample (loaders/integrity.py, fastssl_common/beton_file.py)."""
import json
import os
import shutil
import subprocess
import sys

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
    junk.write_bytes(b'PK\3\4' + bytes(200))
    with pytest.raises(UserError, match='is not a readable .beton file .format version'):
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
])
def test_an_edited_integrity_entry_is_named(written, repo, assert_one_line_error, edit, entry):
    sidecar = json.load(open(f'{written}.json'))
    edit(sidecar)
    json.dump(sidecar, open(f'{written}.json', 'w'))
    assert_one_line_error(verify_cli(repo, written),
                          f'sidecar {written}.json: missing or invalid {entry}')


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
    import numpy as np
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
                          'not found')
    with pytest.raises(UserError, match='not found'):
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
