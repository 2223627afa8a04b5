"""How the image writer walks a user's SRC folder as researchers get them: extracted from a zip
made on a Mac, class folders with subfolders (Tiny ImageNet), links, unreadable folders and
class names that print alike. torchvision's ImageFolder is the reference for the labels.

Success paths call the library (FFCV imported once); error paths run the CLI in a subprocess.
"""
import ctypes
import os
import subprocess
import sys
import unicodedata

import pytest
from torchvision.datasets import ImageFolder

from fastssl_common.errors import UserError
from tests.conftest import REPO
from tests.writers.test_write_images import photo, read_beton, save
from writers.image_sources import find_images, walk_visible
from writers.write_images import write_images

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def image(path):
    return save(photo('chelsea', (24, 16)), str(path))


def labelled(src):
    """``[(path relative to src, label)]`` and the classes, as find_images gives them."""
    found = find_images(str(src))
    return [(os.path.relpath(s.path, src), s.label) for s in found.samples], found.classes


def torchvision_labelled(src):
    dataset = ImageFolder(str(src), loader=lambda path: None)
    return [(os.path.relpath(p, src), label) for p, label in dataset.samples], dataset.classes


def without_root_override():
    """preexec_fn: the child loses root's right to read what its mode forbids (it keeps its
    uid, so it can still run this Python): a chmod 000 folder is then really unreadable."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')


def run_unprivileged(script, *args):
    """Run ``script`` (relative to the repository) where a chmod 000 folder cannot be read;
    skip where this machine cannot take root's override away."""
    try:
        return subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)],
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              preexec_fn=without_root_override)
    except subprocess.SubprocessError as err:
        pytest.skip(f'cannot drop the file-reading override here: {err}')


def test_a_zip_extracted_from_a_mac_keeps_its_classes(tmp_path):
    """Finder's zip adds __MACOSX/<folder>/._<name> resource forks: it was refused as a class
    folder without images ('class folder SRC/__MACOSX has no image ...; it is empty')."""
    src = tmp_path / 'src'
    for name in ('cat/a.jpg', 'dog/b.jpg'):
        image(src / name)
        fork = src / '__MACOSX' / name.replace('/', '/._')
        fork.parent.mkdir(parents=True, exist_ok=True)
        fork.write_bytes(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ')
    (src / '.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1')
    out = str(tmp_path / 'out.beton')
    summary = write_images(str(src), out, workers=1, progress=False)
    assert summary['classes'] == ['cat', 'dog'] and summary['ignored'] == {}
    assert [label for _, label in read_beton(out)] == [0, 1]


def test_class_folders_with_subfolders_are_labelled_as_imagefolder_labels_them(tmp_path):
    """Tiny ImageNet's train/<wnid>/images/<wnid>_0.JPEG (and a boxes file beside them): it was
    written without a label and without a word but 'classes: 0'."""
    src = tmp_path / 'train'
    for wnid in ('n01443537', 'n01629819', 'n01641577'):
        image(src / wnid / 'images' / f'{wnid}_0.JPEG')
        (src / wnid / f'{wnid}_boxes.txt').write_text(f'{wnid}_0.JPEG\t0\t0\t10\t10\n')
    image(src / 'n01629819' / 'extra.jpg')           # one class holds images at two depths
    assert labelled(src) == torchvision_labelled(src)
    out = str(tmp_path / 'out.beton')
    summary = write_images(str(src), out, workers=1, progress=False)
    assert summary['classes'] == ['n01443537', 'n01629819', 'n01641577']
    assert [label for _, label in read_beton(out)] == [0, 1, 1, 2]


@pytest.mark.parametrize('script, files, unreadable', [
    ('write_images.py', ('cat/a.jpg', 'dog/b.jpg'), 'dog'),
    ('write_video_frames.py', ('seq1/00000001.jpg', 'seq1/00000002.jpg', 'seq2/00000001.jpg',
                               'seq2/00000002.jpg'), 'seq2'),
], ids=['class folder', 'frame folder'])
def test_a_folder_the_walk_cannot_read_is_refused(tmp_path, script, files, unreadable):
    """os.walk passed over a folder it could not list: a class was left out and the labels
    after it shifted ('classes: 1 (cat)'), or a video was missing; the run ended well."""
    src = tmp_path / 'src'
    for name in files:
        image(src / name)
    os.chmod(src / unreadable, 0)
    try:
        result = run_unprivileged(f'writers/{script}', src, tmp_path / 'out.beton',
                                  '--workers', '1')
    finally:
        os.chmod(src / unreadable, 0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == f'error: cannot read folder {src / unreadable}: Permission denied\n'
    assert not os.path.exists(tmp_path / 'out.beton')


def test_a_folder_removed_while_the_walk_runs_is_refused(tmp_path):
    for name in ('a/x.jpg', 'b/y.jpg'):
        image(tmp_path / name)
    walk = walk_visible(str(tmp_path))
    assert next(walk) == (str(tmp_path), [])
    os.remove(tmp_path / 'b' / 'y.jpg')                # another job clearing its output
    os.rmdir(tmp_path / 'b')
    next(walk)                                         # a/
    with pytest.raises(UserError, match=f'cannot read folder {tmp_path / "b"}: No such file'):
        next(walk)


def test_a_folder_linked_as_a_second_class_is_refused(tmp_path, assert_one_line_error,
                                                      monkeypatch):
    """One folder under two class names: which one was kept depended on the disk's listing
    order (here the real 'cat' was dropped for 'kitty', silently)."""
    src = tmp_path / 'src'
    for name in ('cat/a.jpg', 'dog/b.jpg'):
        image(src / name)
    os.symlink('cat', src / 'kitty')
    result = subprocess.run([sys.executable, os.path.join(REPO, 'writers/write_images.py'),
                             src, tmp_path / 'out.beton'], capture_output=True, text=True)
    assert_one_line_error(result, f'class folder {src / "kitty"} is the folder {src / "cat"} '
                                  f'again, through a symbolic link: one folder is one class')
    monkeypatch.chdir(src)                             # SRC given as '.'
    with pytest.raises(UserError, match='class folder ./kitty is the folder ./cat again'):
        find_images('.')


def test_links_to_files_and_folders_are_read_and_a_loop_once(tmp_path, capsys):
    outside = tmp_path / 'outside'
    image(outside / 'c.jpg')
    image(outside / 'fox' / 'f.jpg')
    src = tmp_path / 'src'
    for name in ('cat/a.jpg', 'dog/b.jpg'):
        image(src / name)
    os.symlink(outside / 'c.jpg', src / 'cat' / 'linked.jpg')
    os.symlink(outside / 'fox', src / 'fox')
    os.symlink('..', src / 'dog' / 'loop')
    assert labelled(src) == ([('cat/a.jpg', 0), ('cat/linked.jpg', 0), ('dog/b.jpg', 1),
                              ('fox/f.jpg', 2)], ['cat', 'dog', 'fox'])
    assert capsys.readouterr().err == (
        f'note: a symbolic link leads to a folder or file again: read once, at its first '
        f'path in sorted order; left out '
        f'{src / "dog" / "loop"} (the folder {src} again)\n')


def test_class_names_that_print_alike_are_refused(tmp_path):
    """'café' copied from a Mac (decomposed, NFD) beside a Linux 'café' (NFC) made two
    classes that the summary printed as 'café, café'."""
    for i, form in enumerate(('NFC', 'NFD')):
        image(tmp_path / unicodedata.normalize(form, 'café') / f'{i}.jpg')
    image(tmp_path / 'cafg' / '2.jpg')
    with pytest.raises(UserError, match=r"class folders 'cafe\\u0301' and 'caf\\xe9' in .* "
                                        r'are one name in two Unicode forms'):
        find_images(str(tmp_path))

