"""``python -m loaders.verify`` on the wrong things given in good faith: a sidecar that belongs
to another file (copied or left beside it), a dataset path that is a link leading nowhere or
a named pipe. Each is one line saying what it is, not damage or 'not found'."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from fastssl_common.errors import UserError
from loaders.integrity import verify
from tests.conftest import photo_folder
from writers.write_images import write_images


def verify_cli(repo, *args):
    """``python -m loaders.verify ARGS`` as a user runs it; its CompletedProcess."""
    return subprocess.run([sys.executable, '-m', 'loaders.verify', *map(str, args)],
                          capture_output=True, text=True, cwd=repo, timeout=300)


@pytest.fixture(scope='module')
def four_photos(module_tmp):
    """Another real dataset than ``small_beton``: 4 photos (one per class), with its sidecar."""
    root = module_tmp.mktemp('four')
    out = str(root / 'four.beton')
    write_images(str(photo_folder(root / 'src', copies=1)), out, max_resolution=64, workers=1,
                 progress=False)
    return out


def test_the_sidecar_of_another_file_is_named_as_such(small_beton, four_photos, tmp_path,
                                                      repo, assert_one_line_error):
    """It was named as damage: 'data.beton is 16777600 bytes, its sidecar records 16777312'
    (as if cut short or appended to), or, where the sizes matched, 'page 0 differs from the
    hash its sidecar records', where the file is whole and the sidecar is another's."""
    path = tmp_path / 'data.beton'
    shutil.copy(small_beton, path)
    shutil.copy(four_photos + '.json', str(path) + '.json')
    result = verify_cli(repo, path, '--quiet')
    assert_one_line_error(result, f'{path} holds 16 samples, its sidecar {path}.json records 4',
                          'the sidecar of another file')
    assert 'bytes' not in result.stderr and 'page' not in result.stderr


def test_a_sidecar_recording_other_fields_is_named(small_beton, tmp_path):
    path = tmp_path / 'data.beton'
    shutil.copy(small_beton, path)
    sidecar = json.load(open(small_beton + '.json'))
    sidecar['fields'] = {'frame_a': '', 'frame_b': ''}      # as a pairs file's records them
    json.dump(sidecar, open(f'{path}.json', 'w'))
    with pytest.raises(UserError, match=r'has the fields \(image, label\), its sidecar .* '
                                        r'records \(frame_a, frame_b\) \(the sidecar of '):
        verify(str(path), progress=False)


def test_a_link_leading_nowhere_is_named(tmp_path):
    """A dataset linked from a scratch space that is not mounted: ``ls`` shows the link, and
    'not found' sent the user looking for a file that is there."""
    link = tmp_path / 'data.beton'
    link.symlink_to(tmp_path / 'scratch' / 'data.beton')
    with pytest.raises(UserError, match=f'^dataset file {link} is a symbolic link to '
                                        f'{tmp_path}/scratch/data.beton, which does not exist$'):
        verify(link, progress=False)


def test_a_named_pipe_is_not_a_regular_file(tmp_path):
    pipe = tmp_path / 'data.beton'
    os.mkfifo(pipe)
    with pytest.raises(UserError, match=rf'^dataset file {pipe} is not a regular file \(a '
                                        rf'pipe, socket or device\)$'):
        verify(pipe, progress=False)
