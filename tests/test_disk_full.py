"""A full disk, for real: a 2 MiB tmpfs mounted for each test (root only; skipped with the
reason elsewhere). Every writer of the project ends with one line naming the path and the OS's
reason, exit status 2, nothing under the final name and no temporary left behind."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fastssl_common.atomic import atomic_path, write_json
from fastssl_common.errors import UserError

FULL = 'No space left on device'


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at ``tmp_path / 'disk'``, unmounted afterwards."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    if shutil.which('mount') is None:
        pytest.skip('no mount command: cannot make a small file system to fill')
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f'cannot mount a 2 MiB tmpfs here (needs root): {result.stderr.strip()}')
    yield disk
    if subprocess.run(['umount', str(disk)], capture_output=True).returncode != 0:
        subprocess.run(['umount', '-l', str(disk)], capture_output=True)


def fill(disk, leave):
    """Fill ``disk`` up to ``leave`` free bytes."""
    stats = os.statvfs(disk)
    with open(os.path.join(disk, 'filler'), 'wb') as handle:
        handle.write(bytes(max(0, stats.f_bavail * stats.f_frsize - leave)))


def left_on(disk):
    """What is on the disk besides the filler."""
    return sorted(set(os.listdir(disk)) - {'filler'})


def test_image_writer_on_a_full_disk(small_disk, small_beton, run_script,
                                     assert_one_line_error):
    """FFCV's writer processes fill the first page: the worker's ENOSPC becomes one line."""
    src = json.load(open(small_beton + '.json'))['options']['src']
    out = small_disk / 'images.beton'
    result = run_script('writers/write_images.py', src, out, '--workers', '2',
                        '--max-resolution', '64')
    assert_one_line_error(result, f'cannot write {out}: {FULL}')
    assert left_on(small_disk) == []


@pytest.fixture(scope='module')
def clip(module_tmp, planted_cut_clip):
    path = module_tmp.mktemp('clip') / 'clip.mp4'
    planted_cut_clip.write(str(path))
    return path


def test_video_writers_on_a_full_disk(small_disk, clip, run_script, assert_one_line_error):
    """The spool fits, the .beton does not (this was a BufferError hiding the ENOSPC); then
    not even the spool fits."""
    for script, extra in (('writers/write_video_frames.py', ()),
                          ('writers/write_video_pairs.py', ('--gap', '4'))):
        out = small_disk / 'video.beton'
        result = run_script(script, clip, out, '--workers', '1', *extra)
        assert_one_line_error(result, f'cannot write {out}: {FULL}')
        assert left_on(small_disk) == []
    fill(small_disk, 16 << 10)
    result = run_script('writers/write_video_frames.py', clip, out, '--workers', '1')
    assert_one_line_error(result, '.video.beton.spool-', f': {FULL}')
    assert left_on(small_disk) == []


def test_checkpoint_save_on_a_full_disk(small_disk):
    from fastssl.checkpoint import save_checkpoint

    model = torch.nn.Linear(1000, 1000)                 # 4 MB of weights
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(UserError) as err:
        save_checkpoint(str(small_disk), 0, model, optimizer, None, {})
    assert str(err.value) == f"cannot write {small_disk / 'checkpoint_e0001.pt'}: {FULL}"
    assert left_on(small_disk) == []


@pytest.mark.e2e   # whole train.py runs, 20-45 s: make test-e2e
def test_training_into_a_full_disk_ends_with_one_line(small_disk, small_beton, tiny_args,
                                                      repo):
    run_dir = small_disk / 'run'
    result = subprocess.run([sys.executable, 'train.py',
                             *tiny_args(small_beton, run_dir, '--train.epochs=1')],
                            capture_output=True, text=True, cwd=repo, timeout=600)
    assert result.returncode == 2, result.stderr
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: cannot write {run_dir}') and last.endswith(FULL), last
    assert not [n for n in os.listdir(run_dir) if n.endswith('.pt') or '.tmp-' in n]


def test_json_figure_and_log_on_a_full_disk(small_disk):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from fastssl.invariance_report import save_figure
    from fastssl.monitor import Monitor

    fill(small_disk, 8 << 10)
    with pytest.raises(UserError, match=f'cannot write {small_disk}/r.json: {FULL}'):
        write_json(str(small_disk / 'r.json'), {'values': list(range(20000))})
    figure = plt.figure(figsize=(12, 12))
    figure.gca().imshow(torch.rand(400, 400, 3).numpy())
    with pytest.raises(UserError, match=f'cannot write {small_disk}/curves.png: {FULL}'):
        save_figure(figure, str(small_disk / 'curves.png'))
    plt.close(figure)
    monitor = Monitor(str(small_disk / 'log'))
    with pytest.raises(UserError, match=f'cannot write the TensorBoard log in '
                                        f'{small_disk}/log: {FULL}'):
        for step in range(2000):
            monitor.scalars(step, loss=1.0)
        monitor.close()
    assert left_on(small_disk) == ['log']


def test_contact_sheets_and_export_on_a_full_disk(small_disk, video_betons, tmp_path):
    import torchvision

    from fastssl.model_io import export_backbone
    from writers.inspect_pairs import inspect_pairs

    # a sheet larger than the whole disk: NumPy's tofile, which reserves the space first,
    # raised an OSError without an error number, a traceback
    with pytest.raises(UserError, match=f'cannot write {small_disk}/look: {FULL}'):
        inspect_pairs(video_betons[1], str(small_disk / 'look'), pairs=8, height=2000)
    assert left_on(small_disk) == []
    fill(small_disk, 4 << 10)
    with pytest.raises(UserError, match=f'cannot write {small_disk}/look: {FULL}'):
        inspect_pairs(video_betons[1], str(small_disk / 'look'), pairs=8, height=400)
    assert left_on(small_disk) == []        # not even the --out folder it had made
    os.remove(small_disk / 'filler')
    source = tmp_path / 'resnet18.pt'
    torch.save(torchvision.models.resnet18().state_dict(), source)
    with pytest.raises(UserError, match=f'cannot write {small_disk}/backbone.pt: {FULL}'):
        export_backbone(str(source), str(small_disk / 'backbone.pt'))
    assert left_on(small_disk) == []


def test_a_failure_that_is_not_the_disk_keeps_its_own_report(tmp_path):
    """A bug inside the block is not disguised as a write failure."""
    with pytest.raises(ZeroDivisionError):
        with atomic_path(str(tmp_path / 'x.bin')) as tmp:
            open(tmp, 'wb').write(b'x')
            1 / 0
    assert os.listdir(tmp_path) == []
