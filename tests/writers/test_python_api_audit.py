"""The writers' library entry points called as in a notebook: ``pathlib.Path`` arguments,
NumPy numbers, a bad argument type as one UserError naming it, and a Ctrl-C that leaves the
interpreter able to write again (no half-imported torch, no worker process left waiting)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastssl_common.errors import UserError
from tests.conftest import REPO, photo_folder
from writers.inspect_pairs import inspect_pairs
from writers.merge_betons import merge_betons
from writers.render_invariance_sets import render_sets
from writers.write_images import write_images
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs


@pytest.fixture(scope='module')
def clips(module_tmp, chelsea_pan, encode_clip):
    """A folder of three short real clips."""
    folder = module_tmp.mktemp('clips')
    frames = chelsea_pan(36)
    for k in range(3):
        encode_clip(folder / f'clip{k}.mp4', frames[k * 4:k * 4 + 24])
    return folder


def test_path_objects_and_numpy_numbers_work_like_str(tmp_path, clips):
    shards = tmp_path / 'shards'
    for index in range(2):
        summary = write_video_pairs(clips, shards / f'pairs_{index}.beton', gap=np.int64(4),
                                    cut_threshold=np.float32(0.3), shard=(np.int64(index), 2),
                                    workers=1, progress=False)
        assert summary['out'] == str(shards / f'pairs_{index}.beton')
    # a glob (a generator of Paths), as a notebook would give it
    merged = merge_betons(tmp_path / 'pairs.beton', shards.glob('*.beton'), progress=False)
    assert merged['num_samples'] == 15 and merged['inputs'] == 2
    assert json.loads(Path(merged['sidecar']).read_text())['options']['src'] == str(clips)
    summary = inspect_pairs(tmp_path / 'pairs.beton', tmp_path / 'sheets', pairs=np.int64(4),
                            seed=np.int64(1), height=np.int64(64))
    assert json.loads((tmp_path / 'sheets' / 'summary.json').read_text())['seed'] == 1
    assert summary['shown'] == json.loads((tmp_path / 'sheets' / 'summary.json').read_text())[
        'shown']
    frames = write_video_frames(clips, tmp_path / 'frames.beton', stride=np.int64(4),
                                workers=1, progress=False)
    assert frames['num_samples'] == 18


def test_write_images_and_render_sets_take_paths(tmp_path):
    src = photo_folder(tmp_path / 'photos')
    summary = write_images(src, tmp_path / 'photos.beton', max_resolution=np.int64(64),
                           jpeg_quality=np.int32(80), workers=1, strict=np.bool_(False),
                           progress=False)
    assert summary['out'] == str(tmp_path / 'photos.beton') and summary['num_samples'] == 16
    manifest = render_sets(tmp_path / 'sets', objects=np.int64(21), instances=3,
                           per_set=np.int64(3), size=np.int64(32), seed=np.int64(2),
                           transformations=['viewpoint'])
    assert manifest['seed'] == 2
    assert json.loads((tmp_path / 'sets' / 'manifest.json').read_text())['size'] == 32


@pytest.mark.parametrize('call, needle', [
    (lambda d: write_images(5, d / 'o.beton'), 'src must be a path'),
    (lambda d: write_images(d, None), 'out must be a path'),
    (lambda d: write_images(d, d / 'o.beton', boxes=3), '--boxes must be a path'),
    (lambda d: write_images(d, d / 'o.beton', strict='false'),
     "--strict must be True or False, got 'false'"),
    (lambda d: write_images(d, d / 'o.beton', progress=0),
     'progress must be True, False or None, got 0'),
    (lambda d: write_video_pairs(d, d / 'o.beton', gap_range=4),
     '--gap-range needs two whole numbers A B, got 4'),
    (lambda d: write_video_pairs(d, d / 'o.beton', gap=4, shard=1),
     "--shard must be I/N with whole numbers 0 <= I < N, got '1'"),
    (lambda d: write_video_pairs(d, d / 'o.beton', gap=4, proposals=2, detector=3),
     '--detector must be a path'),
    (lambda d: write_video_frames(d, 7), 'out must be a path'),
    (lambda d: merge_betons(d / 'o.beton', str(d / 'a.beton')),
     'inputs must be a list of .beton paths'),
    (lambda d: merge_betons(d / 'o.beton', 5), 'inputs must be a list of .beton paths'),
    (lambda d: merge_betons(d / 'o.beton', [3]), 'inputs must be a path'),
    (lambda d: render_sets(d / 'sets', transformations='viewpoint'),
     "transformations must be a list of names, got 'viewpoint'"),
    (lambda d: render_sets(d / 'sets', overwrite='no'), '--overwrite must be True or False'),
    (lambda d: inspect_pairs(5, d / 'sheets'), 'path must be a path'),
])
def test_bad_argument_types_are_one_user_error(tmp_path, call, needle):
    with pytest.raises(UserError) as caught:
        call(tmp_path)
    assert needle in str(caught.value)
    assert os.listdir(tmp_path) == []


def run_python(code, folder):
    """Run ``code`` in a fresh interpreter (torch not yet imported); its (returncode, stdout,
    stderr). The output goes to files in ``folder``: a process it leaves behind would hold a
    pipe open, and the run would not end."""
    with open(folder / 'out', 'w+') as out, open(folder / 'err', 'w+') as err:
        code = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], stdout=out,
                              stderr=err, cwd=REPO, timeout=120).returncode
        out.seek(0), err.seek(0)
        return code, out.read(), err.read()


def test_ctrl_c_in_the_ffcv_import_leaves_the_writer_usable(tmp_path):
    # Ctrl-C while the writer first imports FFCV (and torch): torch half-imported failed
    # every later call of this interpreter (a notebook's kernel) until a restart
    src = photo_folder(tmp_path / 'photos', copies=1)
    code, out, err = run_python(f"""
        import os, signal, sys
        from writers.write_images import write_images

        def hook(event, args):
            if event == 'import' and args[0] == 'torch.nn' and not hook.done:
                hook.done = True
                os.kill(os.getpid(), signal.SIGINT)
        hook.done = False
        sys.addaudithook(hook)
        try:
            write_images({str(src)!r}, {str(tmp_path / 'a.beton')!r}, workers=1,
                         progress=False)
        except KeyboardInterrupt:
            print('interrupted')
        print(sorted(os.listdir({str(tmp_path)!r})))
        write_images({str(src)!r}, {str(tmp_path / 'a.beton')!r}, workers=1, progress=False)
        print('written again')
    """, tmp_path)
    assert code == 0, err
    assert out.splitlines() == ['interrupted', "['err', 'out', 'photos']", 'written again']


def test_ctrl_c_while_the_video_pool_forks_leaves_no_worker(tmp_path, clips):
    # Ctrl-C right after a pool worker was forked, before the pool listed it: the worker
    # was never stopped and waited for ever, one more process left by each Ctrl-C
    pids = tmp_path / 'pids'
    code, out, err = run_python(f"""
        import os, signal, sys, time
        from writers.write_video_frames import write_video_frames

        def profile(frame, event, arg):
            if (event == 'return' and frame.f_code.co_name == '_launch'
                    and 'popen_fork' in frame.f_code.co_filename and not profile.done):
                profile.done = True
                os.kill(os.getpid(), signal.SIGINT)
        profile.done = False
        os.register_at_fork(after_in_child=lambda: open({str(pids)!r}, 'a').write(
            f'{{os.getpid()}}\\n'))
        sys.setprofile(profile)
        try:
            write_video_frames({str(clips)!r}, {str(tmp_path / 'f.beton')!r}, workers=2,
                               progress=False)
        except KeyboardInterrupt:
            print('interrupted')
    """, tmp_path)
    assert code == 0, err
    assert out.splitlines() == ['interrupted']
    alive = []
    for pid in pids.read_text().split():
        try:
            state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state != 'Z':
            alive.append(int(pid))
            os.kill(int(pid), 9)
    assert alive == []
    assert sorted(os.listdir(tmp_path)) == ['err', 'out', 'pids']


def test_verify_takes_a_path_object_and_names_a_bad_one(small_beton):
    from loaders.integrity import verify

    assert verify(Path(small_beton), progress=False)['samples'] == 16
    with pytest.raises(UserError, match=r'^path must be a path \(a str or a pathlib.Path\), '
                                        r'got 5$'):
        verify(5)


def test_ctrl_c_while_an_earlier_render_is_replaced_keeps_the_new_one(tmp_path):
    """A Ctrl-C after the earlier render was removed and before the new one took its name
    left neither (the new one was removed as a temporary)."""
    import signal
    import threading

    out = str(tmp_path / 'sets')
    small = dict(objects=21, instances=3, per_set=3, size=32, transformations=['viewpoint'])
    render_sets(out, seed=0, **small)

    def stop_at_removal(frame, event, arg):
        if (event == 'call' and frame.f_code.co_name == 'rmtree'
                and frame.f_locals.get('path') == out):
            sys.setprofile(None)
            signal.raise_signal(signal.SIGINT)

    assert threading.current_thread() is threading.main_thread()
    sys.setprofile(stop_at_removal)
    try:
        with pytest.raises(KeyboardInterrupt):
            render_sets(out, seed=1, overwrite=True, **small)
    finally:
        sys.setprofile(None)
    manifest = json.loads((tmp_path / 'sets' / 'manifest.json').read_text())
    assert manifest['seed'] == 1
    assert os.listdir(tmp_path) == ['sets']
