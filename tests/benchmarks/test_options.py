"""The benchmarks' option checks: a bad option or output path is one UserError naming it,
raised before anything is timed (nothing printed yet: the machine line comes first), so that a
typo does not cost a run of minutes. In-process and fast: no benchmark runs to its end here."""
import importlib
import os
import shutil
import subprocess
import sys

import numba
import pytest
import torch

from benchmarks import dali_baseline
from benchmarks.common import check_json_folder, check_output_file
from fastssl_common.errors import UserError

BENCHMARKS = ('invariance', 'loader', 'train_step', 'video', 'proposals', 'tracking',
              'dali_baseline', 'image_writer')
VIDEO_BENCHMARKS = ('video', 'proposals', 'tracking')


def refused(capsys, name, *args, match):
    """Run ``python -m benchmarks.NAME --quick ARGS`` in-process: it must raise a UserError
    matching ``match`` having printed nothing."""
    module = importlib.import_module(f'benchmarks.{name}')
    with pytest.raises(UserError, match=match):
        module.main(['--quick', *args])
    assert capsys.readouterr().out == ''


def resolved(name, *args):
    """The checked options of ``--quick ARGS`` (the benchmark's ``resolve``, nothing run)."""
    module = importlib.import_module(f'benchmarks.{name}')
    return module.resolve(module.build_parser().parse_args(['--quick', *args]))


# ---------------------------------------------------------------------------- output paths

def test_output_check_accepts_a_new_file_and_leaves_nothing_behind(tmp_path):
    check_output_file(None, '--json')                   # not asked for
    check_output_file(str(tmp_path / 'out.json'), '--json')
    (tmp_path / 'old.json').write_text('{}')            # replaced atomically later
    check_output_file(str(tmp_path / 'old.json'), '--json')
    assert sorted(os.listdir(tmp_path)) == ['old.json']


@pytest.mark.parametrize('path, message', [
    ('', '--out needs a file name, got an empty one'),
    ('{tmp}', '--out {tmp} is a folder, not a file'),
    ('{tmp}/no/such/out.json', 'folder {tmp}/no/such does not exist'),
    ('{tmp}/a_file/out.json', 'folder {tmp}/a_file is a file, not a folder'),
    ('/dev/null', 'exists and is not a regular file'),
    ('/proc/out.json', 'cannot create a file in folder /proc'),    # refused even to root
])
def test_output_check_refuses_a_path_that_cannot_be_written(tmp_path, path, message):
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(UserError) as error:
        check_output_file(path.format(tmp=tmp_path), '--out')
    assert message.format(tmp=tmp_path) in str(error.value)


@pytest.mark.parametrize('name', BENCHMARKS)
@pytest.mark.parametrize('path, message', [
    ('', 'needs a file name'),
    ('{tmp}', 'is a folder, not a file'),
    ('{tmp}/missing/out.json', 'does not exist'),
    ('/proc/out.json', 'cannot create a file'),
])
def test_every_benchmark_checks_json_before_it_starts(tmp_path, capsys, name, path, message):
    refused(capsys, name, '--json', path.format(tmp=tmp_path), match=f'--json .*{message}')
    assert not (tmp_path / 'missing').exists()          # the folder is not made either


@pytest.mark.parametrize('content', [b'\x00\x00\x00\x18ftypisom', b'[1, 2]', b'{"a": 1}'])
def test_json_onto_a_file_that_is_not_an_earlier_result_is_refused(tmp_path, capsys, content):
    """``tracking --videos v.mp4 --json v.mp4`` replaced the video with the results."""
    video = tmp_path / 'v.mp4'
    video.write_bytes(content)
    refused(capsys, 'tracking', '--json', str(video),
            match=f'^--json {video} exists and is not an earlier benchmark result')
    assert video.read_bytes() == content
    (tmp_path / 'old.json').write_text('{"machine": {}, "config": {}}')
    check_json_folder(str(tmp_path / 'old.json'))       # an earlier result is replaced


# ---------------------------------------------------------------------------- loader threads

@pytest.mark.parametrize('name', ('loader', 'dali_baseline', 'train_step', 'video'))
def test_loader_threads_beyond_the_cores_are_refused_before_anything_runs(capsys, name):
    """``--workers`` is FFCV's thread count: beyond Numba's threads the loader benchmark started
    as many torchvision worker processes (killed for memory at 100000), and the video benchmark
    failed after its timed writers. 0 is all cores, as for train.py."""
    threads = numba.config.NUMBA_NUM_THREADS
    refused(capsys, name, '--workers', str(threads + 1),
            match=rf'^--workers={threads + 1} exceeds the {threads} threads FFCV can run')
    args = resolved(name, '--workers', '0')
    assert (args[0] if name == 'train_step' else args).workers == threads   # (args, device)


# ---------------------------------------------------------------------------- writers, disk

@pytest.mark.parametrize('name', ('image_writer', 'proposals', 'tracking'))
def test_writer_processes_beyond_the_cpus_are_refused(capsys, name):
    # image_writer --workers 999 started 999 writer processes
    cpus = len(os.sched_getaffinity(0))
    refused(capsys, name, '--workers', '999',
            match=rf'^--workers 999 is more than the {cpus} CPUs this process may use$')


@pytest.mark.parametrize('name', ('loader', 'dali_baseline', 'image_writer', 'train_step'))
def test_generated_jpegs_beyond_the_free_disk_are_refused_before_any_is_made(capsys, name):
    # --samples 1e9 wrote JPEGs into the temporary folder until its disk was full
    refused(capsys, name, '--samples', '1000000000',
            match=r'^--samples 1000000000: the generated JPEGs would take about \d+\.\d GB in '
                  r'.*, more than its \d+\.\d GB free \(TMPDIR names another folder\)$')


# ---------------------------------------------------------------------------- invariance

@pytest.mark.parametrize('args, match', [
    (['--sizes', 'abc'], "--sizes 'abc': expected IMAGESxNEURONS"),
    (['--sizes', '10x'], "--sizes '10x': expected IMAGESxNEURONS"),
    (['--sizes', '2000X64x3'], "--sizes '2000X64x3': expected"),
    (['--sizes', '2000x64,,4000x64'], 'an empty size'),
    (['--sizes', '0x10'], '--sizes 0x10: the top-25 score needs at least 25 neurons'),
    (['--sizes', '0x64'], '--sizes 0x64: 0 images .* at least two targets'),
    (['--reference', 'abc'], "--reference 'abc': expected"),
    (['--reference', '5x64'], '--reference 5x64: 5 images in sets of --set-size 10 .* found 1'),
    (['--repeats', '0'], '--repeats must be at least 1'),
    (['--repeats', '-1'], '--repeats must be at least 1'),
    (['--set-size', '-3'], '--set-size must be at least 3'),
    (['--set-size', '0'], '--set-size must be at least 3'),
    (['--targets', '0'], '--targets must be at least 2'),
    (['--targets', '1'], '--targets must be at least 2'),
])
def test_invariance_options(capsys, args, match):
    # --sizes small: were a bad --reference caught only after the timing, that stays quick
    refused(capsys, 'invariance', '--sizes', '200x32', *args, match=match)


def test_invariance_accepts_the_smallest_scorable_size():
    args = resolved('invariance', '--sizes', '4x25, 7X30', '--set-size', '3', '--targets', '2',
                    '--reference', '')
    assert args.sizes == [(4, 25), (7, 30)] and args.reference is None


# ---------------------------------------------------------------------------- train_step

@pytest.mark.parametrize('device', ['gpu', 'tpu', 'cuda:x', 'meta', 'cuda:', 'CPU', 'cuda:01',
                                    'cuda:99999999999999999999'])
def test_train_step_refuses_devices_the_help_does_not_name(device):
    with pytest.raises(UserError, match=f"--device must be auto, cpu, cuda or cuda:N, got "
                                        f"'{device}'"):
        resolved('train_step', '--device', device)


@pytest.mark.parametrize('device', ['cuda', 'cuda:0'])
def test_train_step_refuses_cuda_without_a_gpu(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UserError, match=f'--device {device}: CUDA is not available'):
        resolved('train_step', '--device', device)


def test_train_step_checks_the_gpu_index_and_keeps_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    with pytest.raises(UserError, match='--device cuda:2: this machine has 2 CUDA device'):
        resolved('train_step', '--device', 'cuda:2')
    args, device = resolved('train_step', '--device', 'cuda:1')
    assert device == torch.device('cuda:1') and args.device == 'cuda:1'   # the trainer's too
    assert resolved('train_step', '--device', 'cpu')[0].device == 'cpu'


@pytest.mark.parametrize('path, match', [
    ('{tmp}/missing/profile.txt', '--profile .*/missing/profile.txt: folder .* does not exist'),
    ('{tmp}', '--profile .* is a folder, not a file'),
    ('', '--profile needs a file name'),
])
def test_train_step_checks_profile_before_it_starts(tmp_path, capsys, path, match):
    refused(capsys, 'train_step', '--profile', path.format(tmp=tmp_path), match=match)


def test_train_step_refuses_profile_and_json_on_one_file(tmp_path):
    out = str(tmp_path / 'out.json')
    with pytest.raises(UserError, match='--profile and --json name the same file'):
        resolved('train_step', '--json', out, '--profile', out)


@pytest.fixture(scope='module')
def bad_betons(module_tmp, small_beton):
    """A .beton cut short and a file that is no .beton at all."""
    root = module_tmp.mktemp('bad_betons')
    cut, junk = root / 'cut.beton', root / 'junk.beton'
    shutil.copy(small_beton, cut)
    os.truncate(cut, os.path.getsize(cut) - 100)
    junk.write_bytes(b'not a beton' * 100)
    return str(cut), str(junk)


def test_train_step_checks_loader_betons_before_it_starts(small_beton, bad_betons,
                                                          video_betons):
    cut, junk = bad_betons
    _, pairs = video_betons                        # frame pairs without tracked regions
    cases = [
        (f'fti={junk}', f'--loader-betons fti: {junk} is not a readable .beton file'),
        (f'fti={cut}', f'--loader-betons fti: {cut} is truncated'),
        (f'fti={small_beton}', f'--loader-betons fti: {small_beton} has no frame_a, frame_b, '
                               'video_id field'),
        (f'fti_rt={pairs}', f'--loader-betons fti_rt: no pair of {pairs} has a tracked '
                            'region'),
    ]
    for item, message in cases:
        with pytest.raises(UserError) as error:
            resolved('train_step', '--loader-betons', item)
        assert str(error.value).startswith(message), (item, str(error.value))
    with pytest.raises(UserError, match='holds 16 samples, fewer than one batch of 24'):
        resolved('train_step', '--batch-size', '24', '--samples', '48', '--loader-betons',
                 f'mocov2={small_beton}')
    args, _ = resolved('train_step', '--loader-betons', f'fti={pairs}')
    assert args.loader_betons == [('fti', pairs)]


# ---------------------------------------------------------------------------- sizes, frames

@pytest.mark.parametrize('name', VIDEO_BENCHMARKS)
@pytest.mark.parametrize('args, match', [
    (['--max-frames', '-1'], r'^--max-frames must be a whole number >= 1, or 0 \(no cap\)'),
    (['--max-frames', '2'], '^--max-frames 2 leaves no pairs with --gap 4'),
    (['--max-frames', '4'], '^--max-frames 4 leaves no pairs with --gap 4'),
    (['--max-resolution', '5'], '^--max-resolution must be a whole number >= 16'),
    (['--max-resolution', '-1'], '^--max-resolution must be a whole number >= 16'),
])
def test_video_benchmarks_check_frames_and_stored_size(name, args, match):
    with pytest.raises(UserError, match=match):
        resolved(name, *args)


@pytest.mark.parametrize('name', VIDEO_BENCHMARKS)
def test_a_frame_cap_the_user_did_not_give_is_named_as_quicks(name):
    # '--quick --gap 40' said '--max-frames 32 leaves no pairs', an option never given
    with pytest.raises(UserError, match=r"^--max-frames \d+ \(--quick's\) leaves no pairs with "
                                        '--gap 40'):
        resolved(name, '--gap', '40')


def test_tracking_frames_beyond_memory_are_one_line():
    """--frames 10000000 reached a MemoryError traceback building the test sequences."""
    with pytest.raises(UserError, match=r'^--frames 10000000: the test sequences would take '
                       r'20736\.0 GB, more than the [0-9.]+ GB of memory this process may use$'):
        resolved('tracking', '--frames', '10000000')
    assert resolved('tracking', '--frames', '1000').frames == 1000


@pytest.mark.parametrize('name', ('loader', 'dali_baseline'))
def test_jpeg_benchmarks_check_the_stored_size(name):
    with pytest.raises(UserError, match='^--max-resolution must be a whole number >= 16'):
        resolved(name, '--max-resolution', '5')


@pytest.mark.parametrize('name, low', [('video', 1), ('loader', 1), ('dali_baseline', 1),
                                       ('train_step', 32)])
def test_view_resolution_has_bounds(name, low):
    with pytest.raises(UserError, match=f'^--resolution must be from {low} to 1024 px, got '
                                        '100000'):
        resolved(name, '--resolution', '100000')
    if low > 1:   # train_step: the trainer's own floor, found before the first section
        with pytest.raises(UserError, match=f'^--resolution must be from {low} to 1024'):
            resolved(name, '--resolution', str(low - 1))


# ---------------------------------------------------------------------------- DALI

def test_dali_baseline_with_json_and_no_dali_exits_before_it_starts(monkeypatch, tmp_path,
                                                                    capsys):
    monkeypatch.setitem(sys.modules, 'nvidia.dali', None)    # import now raises ImportError
    out = tmp_path / 'dali.json'
    with pytest.raises(UserError) as error:
        dali_baseline.main(['--quick', '--json', str(out)])
    message = str(error.value)
    assert message.startswith(f'--json {out}: no results to write: NVIDIA DALI is not')
    assert 'nvidia-dali-cuda120' in message and 'make benchmark-deps' in message
    assert '\n' not in message and not out.exists() and capsys.readouterr().out == ''
    # without --json nothing was asked for: the skip is printed, exit status 0
    assert dali_baseline.main(['--quick']) == 0
    assert capsys.readouterr().out.startswith('skipping the DALI baseline: NVIDIA DALI')


@pytest.fixture(scope='module')
def run_module(repo):
    """``run_module(module, *args)``: ``python -m module args`` from the repository."""
    def run(module, *args):
        return subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                              text=True, cwd=repo, timeout=120)
    return run


@pytest.mark.parametrize('name, args, needle', [
    ('invariance', ['--sizes', 'abc'], "--sizes 'abc'"),
    ('train_step', ['--device', 'gpu'], '--device must be auto, cpu, cuda or cuda:N'),
])
def test_the_command_line_gives_one_line_and_status_2(run_module, assert_one_line_error,
                                                      name, args, needle):
    # these two raised tracebacks (ValueError, RuntimeError) before they were checked
    assert_one_line_error(run_module(f'benchmarks.{name}', *args), needle)
