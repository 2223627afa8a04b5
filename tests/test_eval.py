"""eval.py over a real training checkpoint: knn reproduces the trainer's own kNN monitor;
export, knn and linear end to end; one-line errors for bad input."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from eval import main
from fastssl.config import load_settings
from fastssl.evaluation import check_same_classes, checked_eval_loaders, knn_evaluation
from fastssl.knn import weighted_knn
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError, run_cli


@pytest.fixture(scope='module')
def trained(small_beton, module_tmp, tiny_args):
    run = module_tmp.mktemp('eval_run')
    trainer = Trainer(load_settings(tiny_args(
        small_beton, run, '--train.epochs=1', '--augment.placement=none',
        f'--logging.knn_train_path={small_beton}', '--logging.knn_k=5')))
    trainer.fit()
    return trainer.evaluate_knn(), str(run / 'checkpoint_last.pt')


def test_knn_monitor_logs_the_untrained_network_then_each_due_epoch(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    expected, checkpoint = trained
    events = EventAccumulator(str(Path(checkpoint).parent))
    events.Reload()
    logged = events.Scalars('knn/top1')
    steps_per_epoch = torch.load(checkpoint, weights_only=False)['steps_per_epoch']
    assert [event.step for event in logged] == [0, steps_per_epoch]
    assert logged[-1].value == pytest.approx(expected[0])
    # small_beton's 4 classes all fit in a top 5: no top-5 curve stuck at 100 %
    assert expected[1] is None and 'knn/top5' not in events.Tags()['scalars']


def data_args(beton):
    return [f'--eval.train_path={beton}', '--eval.resolution=32', '--eval.batch_size=8',
            '--eval.num_workers=1']


def test_knn_of_checkpoint_equals_trainer_monitor(trained, small_beton, tmp_path):
    expected, checkpoint = trained
    settings = SimpleNamespace(checkpoint=checkpoint, arch='auto', train_path=small_beton,
                               val_path='', resolution=32, batch_size=8, num_workers=1,
                               device='cpu', precision='fp32',
                               output=str(tmp_path / 'knn.json'))
    result = knn_evaluation(settings, k=5, temperature=0.07)
    assert (result['top1'], result['top5']) == pytest.approx(expected)
    assert result['top5'] is None  # 4 classes
    assert (result['arch'], result['source_format']) == ('resnet18', 'fastssl checkpoint')
    assert json.loads((tmp_path / 'knn.json').read_text())['top1'] == result['top1']


def run_main(capsys, *argv):
    """eval.py in this process (its imports and FFCV's compiled pipelines are already here);
    the one subprocess run below covers the script's own entry point."""
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_export_then_knn_and_linear_from_the_command_line(trained, small_beton, tmp_path,
                                                          capsys, run_script):
    expected, checkpoint = trained
    out = tmp_path / 'backbone.pth'
    exported = run_main(capsys, 'export', f'--export.checkpoint={checkpoint}',
                        f'--export.out={out}')
    assert (exported['arch'], exported['has_fc']) == ('resnet18', False)
    missing, _ = torchvision.models.resnet18().load_state_dict(torch.load(out), strict=False)
    assert sorted(missing) == ['fc.bias', 'fc.weight']
    # kNN over the exported torchvision file reproduces the trainer's monitor.
    knn = run_script('eval.py', 'knn', f'--eval.checkpoint={out}', *data_args(small_beton),
                     '--knn.k=5', f'--eval.output={tmp_path}/knn.json')
    assert knn.returncode == 0, knn.stderr
    result = json.loads((tmp_path / 'knn.json').read_text())
    assert result == json.loads(knn.stdout)
    assert result['source_format'] == 'torchvision state dict'
    assert (result['top1'], result['top5']) == pytest.approx(expected)
    # 16 images in 512 dimensions: the probe fits its own training set exactly.
    result = run_main(capsys, 'linear', f'--eval.checkpoint={checkpoint}',
                      *data_args(small_beton), '--linear.optimizer=lbfgs', '--linear.epochs=50')
    assert result['num_classes'] == 4 and result['train_top1'] == result['top1'] == 100.0


def test_bad_input_is_one_line(trained, small_beton, tmp_path, capsys, assert_one_line_error):
    _, checkpoint = trained
    with pytest.raises(SystemExit) as exited:
        run_cli(main, ['knn', f'--eval.checkpoint={tmp_path}/none.pt', *data_args(small_beton)])
    assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                          stderr=capsys.readouterr().err), 'none.pt')
    torch.save({'weights': 1}, tmp_path / 'foreign.pt')
    with pytest.raises(UserError, match=r'foreign\.pt matches no known .*found keys weights'):
        main(['linear', f'--eval.checkpoint={tmp_path}/foreign.pt', *data_args(small_beton)])
    with pytest.raises(UserError, match='missing.beton'):
        main(['knn', f'--eval.checkpoint={checkpoint}',
              *data_args(tmp_path / 'missing.beton')])
    with pytest.raises(UserError, match=r'linear\.epochs must be > 0, got 0'):
        main(['linear', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              '--linear.epochs=0'])
    with pytest.raises(UserError, match="unknown command 'knnn'.*knn,linear,export"):
        main(['knnn'])
    # it said "unknown command '--eval.checkpoint=x.pt'"
    with pytest.raises(UserError, match=r'^no command before --eval.checkpoint=x.pt; usage: '
                                        r'.*\{knn,linear,export'):
        main(['--eval.checkpoint=x.pt'])
    with pytest.raises(UserError, match="missing required config key 'export.out'"):
        main(['export', f'--export.checkpoint={checkpoint}'])


def test_help_lists_commands_and_each_commands_keys(capsys):
    assert main(['--help']) == 0
    assert 'knn,linear,export' in capsys.readouterr().out
    for command, key in (('knn', '--knn.temperature'), ('linear', '--linear.weight_decay'),
                         ('export', '--export.out')):
        with pytest.raises(SystemExit):
            main([command, '--help'])
        assert key in capsys.readouterr().out


@pytest.fixture(scope='module')
def label_betons(small_beton, module_tmp):
    """The photos of ``small_beton`` written again: from a list (unlabelled: -1), and one
    class's folder alone (a single class)."""
    from writers.write_images import write_images
    root = module_tmp.mktemp('labels')
    sources = [s['source'] for s in json.loads(Path(small_beton + '.json').read_text())['samples']]
    (root / 'list.txt').write_text('\n'.join(sources) + '\n')
    single = root / 'single' / Path(sources[0]).parent.name
    single.mkdir(parents=True)
    for source in sources[:4]:
        (single / Path(source).name).symlink_to(source)
    shifted = root / 'shifted'       # every class folder but the first: labels one lower
    for source in sources:
        if Path(source).parent.name != single.name:
            (shifted / Path(source).parent.name).mkdir(parents=True, exist_ok=True)
            (shifted / Path(source).parent.name / Path(source).name).symlink_to(source)
    out = {'unlabelled': root / 'unlabelled.beton', 'single': root / 'single.beton',
           'shifted': root / 'shifted.beton'}
    write_images(str(root / 'list.txt'), str(out['unlabelled']), max_resolution=96, workers=1,
                 progress=False)
    for name in ('single', 'shifted'):
        write_images(str(root / name), str(out[name]), max_resolution=96, workers=1,
                     progress=False)
    return out


def test_labels_that_measure_nothing_are_refused(trained, small_beton, label_betons, capsys,
                                                 assert_one_line_error):
    """Unlabelled samples (-1) in either set, or a training set of one class, give an accuracy
    that means nothing: one line naming the file, before any image is decoded."""
    _, checkpoint = trained
    unlabelled, single = label_betons['unlabelled'], label_betons['single']
    with pytest.raises(SystemExit) as exited:
        run_cli(main, ['knn', f'--eval.checkpoint={checkpoint}', *data_args(unlabelled)])
    assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                          stderr=capsys.readouterr().err),
                          unlabelled, 'has unlabelled samples (label -1')
    with pytest.raises(UserError, match=f'eval.val_path {unlabelled} has unlabelled samples'):
        main(['linear', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              f'--eval.val_path={unlabelled}'])
    with pytest.raises(UserError, match=f'eval.train_path {single} holds a single class'):
        main(['linear', f'--eval.checkpoint={checkpoint}', *data_args(single)])


def test_images_damaged_after_writing_are_warned_about_and_counted(trained, small_beton,
                                                                  damaged_beton, tmp_path,
                                                                  capsys):
    """A JPEG that no longer decodes is evaluated as a black image (not as the image its
    decode buffer held before): one warning line per file, its count in the result, exit 0."""
    import shutil

    from tests.conftest import DAMAGED_SAMPLE
    _, checkpoint = trained
    # with its sidecar, which a file damaged after it was written still has (a val file without
    # one gets a line of its own: its class numbering cannot be checked)
    damaged = str(tmp_path / 'damaged.beton')
    shutil.copy(damaged_beton, damaged)
    shutil.copy(small_beton + '.json', damaged + '.json')
    warning = (f'warning: 1 image(s) of {damaged} did not decode and were evaluated as '
               f'black images (lowest sample {DAMAGED_SAMPLE}); the file was damaged after it '
               f'was written: python -m loaders.verify {damaged} checks the whole file')

    def evaluate(*argv):
        """(result, standard error lines) of eval.py ``argv``, which must exit 0."""
        assert main([*argv[:1], f'--eval.checkpoint={checkpoint}', *argv[1:]]) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out), captured.err.splitlines()

    output = tmp_path / 'knn.json'
    result, err = evaluate('knn', *data_args(small_beton), f'--eval.val_path={damaged}',
                           '--knn.k=5', f'--eval.output={output}')
    assert err == [warning] and result['decode_failures'] == {damaged: 1}
    assert json.loads(output.read_text()) == result
    # the one file as train and val set: decoded once, warned about once
    result, err = evaluate('linear', *data_args(damaged), '--linear.epochs=2')
    assert err == [warning] and result['decode_failures'] == {damaged: 1}


def test_knn_k_larger_than_the_bank_votes_with_the_bank_and_says_so(trained, small_beton,
                                                                    capsys):
    # it used to report the k asked for while voting with fewer neighbours
    _, checkpoint = trained
    result = run_main(capsys, 'knn', f'--eval.checkpoint={checkpoint}',
                      *data_args(small_beton), '--knn.k=17')
    # the val set is the bank: each query votes with the other 15
    whole_bank = run_main(capsys, 'knn', f'--eval.checkpoint={checkpoint}',
                          *data_args(small_beton), '--knn.k=15')
    assert (result['k'], result['k_requested'], result['leave_one_out']) == (15, 17, True)
    assert 'k_requested' not in whole_bank and 'decode_failures' not in whole_bank
    assert (result['top1'], result['top5']) == (whole_bank['top1'], whole_bank['top5'])


def test_knn_with_a_small_temperature_still_votes_by_similarity():
    """exp(s / T) overflows float32 for T < 0.0113: every neighbour's vote was inf. A query
    that is in the bank is its own nearest neighbour and must win at any temperature."""
    bank = torch.nn.functional.normalize(torch.randn(64, 32, generator=torch.Generator()
                                                     .manual_seed(0)), dim=1)
    labels = torch.arange(64) % 8
    for temperature in (0.07, 0.005, 1e-5):
        top1, _ = weighted_knn(bank, labels, bank, labels, k=20, temperature=temperature)
        assert top1 == 100.0, temperature


def test_a_diverged_linear_probe_is_an_error_not_an_accuracy(trained, small_beton):
    _, checkpoint = trained
    with pytest.raises(UserError, match=r'linear probe diverged .* linear\.lr=1e\+30'):
        main(['linear', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              '--linear.lr=1e30', '--linear.epochs=2'])
    # a weight decay that diverges at a sound lr: the line used to blame linear.lr alone
    with pytest.raises(UserError) as refused:
        main(['linear', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              '--linear.lr=0.1', '--linear.weight_decay=1e37', '--linear.epochs=2'])
    assert str(refused.value) == ('the linear probe diverged (its weights are not finite) with '
                                  'linear.lr=0.1, linear.weight_decay=1e+37: use a smaller '
                                  'linear.lr or linear.weight_decay')


def test_more_loader_threads_than_ffcv_can_run_is_one_line(trained, small_beton):
    import numba
    _, checkpoint = trained
    threads = numba.config.NUMBA_NUM_THREADS
    with pytest.raises(UserError, match=f'eval.num_workers={threads + 1} exceeds the {threads} '
                                        f'threads'):
        main(['knn', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              f'--eval.num_workers={threads + 1}'])


def test_batch_buffers_beyond_memory_are_one_line(trained, small_beton, tmp_path):
    # each key in range, together beyond the machine: a torch allocation traceback in FFCV
    _, checkpoint = trained
    with pytest.raises(UserError, match=r"eval\.resolution 100000 with eval\.batch_size 256: "
                                        r"the loader's batch buffers alone would take 38\.4 TB"):
        main(['knn', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
              '--eval.resolution=100000', '--eval.batch_size=256',
              f'--eval.output={tmp_path}/knn.json'])
    assert not (tmp_path / 'knn.json').exists()


def test_outputs_never_replace_inputs_or_other_files(trained, small_beton, tmp_path):
    """eval.output onto the data or the checkpoint, a file that is not an earlier result, or a
    folder: refused before the work, every file as it was; export.out onto a training
    checkpoint likewise."""
    _, checkpoint = trained
    notes = tmp_path / 'notes.txt'
    notes.write_text('mine')
    sidecar = small_beton + '.json'   # JSON, as an earlier output is: it used to be replaced
    before = {path: Path(path).read_bytes()
              for path in (small_beton, sidecar, checkpoint, notes)}
    for output, needle in ((small_beton, 'is an input of this run'),
                           (sidecar, f'is the sidecar of {small_beton}, an input of this run'),
                           (checkpoint, 'is an input of this run'),
                           (notes, 'exists and is not a JSON file'),
                           (tmp_path, 'is a folder, not a file'),
                           (f'{tmp_path}/new/', 'ends in /: give the path of a file')):
        with pytest.raises(UserError, match=f'eval.output {output} {needle}'):
            main(['knn', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
                  '--knn.k=5', f'--eval.output={output}'])
    with pytest.raises(UserError, match=f'export.out {notes} exists and is not a PyTorch'):
        main(['export', f'--export.checkpoint={checkpoint}', f'--export.out={notes}'])
    exported = tmp_path / 'backbone.pth'
    assert main(['export', f'--export.checkpoint={checkpoint}', f'--export.out={exported}']) == 0
    run_copy = tmp_path / 'checkpoint_e0001.pt'
    run_copy.write_bytes(before[checkpoint])
    with pytest.raises(UserError, match=f'export.out {run_copy} is a checkpoint, not an earlier '
                                        f'export'):
        main(['export', f'--export.checkpoint={exported}', f'--export.out={run_copy}'])
    assert run_copy.read_bytes() == before[checkpoint]
    assert {path: Path(path).read_bytes() for path in before} == before


def test_a_val_set_numbering_its_classes_otherwise_is_refused(trained, small_beton, label_betons,
                                                              tmp_path):
    """A val folder without the train set's first class numbers every class one lower: kNN,
    the linear probe and the training monitor would score right answers as wrong."""
    _, checkpoint = trained
    classes = json.loads(Path(small_beton + '.json').read_text())['classes']
    shifted = label_betons['shifted']
    expected = (f"eval.val_path {shifted} numbers its classes unlike eval.train_path "
                f"{small_beton}: its label 0 is '{classes[1]}', the train set's is "
                f"'{classes[0]}'")
    for command in ('knn', 'linear'):
        with pytest.raises(UserError, match=re.escape(expected)):
            main([command, f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
                  f'--eval.val_path={shifted}'])
    with pytest.raises(UserError, match='logging.knn_val_path .* numbers its classes unlike'):
        Trainer(load_settings([f'--data.path={small_beton}', f'--train.run_dir={tmp_path}/r',
                               f'--logging.knn_train_path={small_beton}',
                               f'--logging.knn_val_path={shifted}', '--data.batch_size=8',
                               '--model.arch=resnet18', '--moco.queue_size=8']))


def test_a_refused_file_is_named_with_its_key(small_beton, tmp_path):
    """The monitor's and eval.py's files come from several keys: the line says which."""
    notes = tmp_path / 'notes.beton'
    notes.write_text('not a beton\n' * 100)
    with pytest.raises(UserError, match=f'^logging.knn_val_path: {re.escape(str(notes))} '):
        checked_eval_loaders(small_beton, str(notes), ('logging.knn_train_path',
                                                       'logging.knn_val_path'), 8, 32, 1)


def test_video_frames_files_of_other_videos_are_refused(tmp_path, encode_clip, chelsea_pan,
                                                        small_beton):
    """A video frames file labels each frame with its video's number in its own SRC: a val
    file of other videos (or a subset) numbers them otherwise, and kNN scored 0 % silently."""
    from writers.write_video_frames import write_video_frames

    def frames_file(name, videos):
        src = tmp_path / name
        src.mkdir()
        for video in videos:
            encode_clip(src / video, chelsea_pan(8, step=2 + len(video)))
        out = str(tmp_path / f'{name}.beton')
        write_video_frames(str(src), out, max_resolution=64, progress=False)
        return out

    both = frames_file('both', ['a.mp4', 'b.mp4'])
    copy = frames_file('copy', ['a.mp4', 'b.mp4'])        # the same videos elsewhere
    only_b = frames_file('only_b', ['b.mp4'])
    check_same_classes(both, copy, 'eval.train_path', 'eval.val_path')
    with pytest.raises(UserError, match=re.escape(
            f"eval.val_path {only_b} numbers its classes unlike eval.train_path {both}: its "
            f"label 0 is 'b.mp4', the train set's is 'a.mp4'")):
        check_same_classes(both, only_b, 'eval.train_path', 'eval.val_path')
    with pytest.raises(UserError, match="its label 0 is '.*', the train set's is 'a.mp4'"):
        check_same_classes(both, small_beton, 'eval.train_path', 'eval.val_path')


@pytest.mark.parametrize('kind, message', [
    ('unlabelled', 'has unlabelled samples'),
    ('single', 'logging.knn_train_path .* holds a single class'),
])
def test_the_training_monitor_refuses_labels_that_measure_nothing(small_beton, label_betons,
                                                                   tmp_path, kind, message):
    # unlabelled: an IndexError traceback at the first monitor; one class: a 100 % monitor
    with pytest.raises(UserError, match=message):
        Trainer(load_settings([f'--data.path={small_beton}', f'--train.run_dir={tmp_path}/r',
                               f'--logging.knn_train_path={label_betons[kind]}',
                               '--data.batch_size=8', '--model.arch=resnet18',
                               '--moco.queue_size=8']))


def test_the_train_file_under_another_spelling_is_scored_leave_one_out(trained, small_beton,
                                                                        tmp_path, capsys):
    """``F//x.beton``, ``F/../F/x.beton`` or a link to the train file is the train set: each
    image used to find itself in the bank (leave_one_out false, an inflated top-1)."""
    _, checkpoint = trained
    folder, name = str(Path(small_beton).parent), Path(small_beton).name
    link = tmp_path / 'link.beton'
    link.symlink_to(small_beton)
    same = run_main(capsys, 'knn', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
                    '--knn.k=5')
    assert same['leave_one_out']
    for spelling in (f'{folder}//{name}', f'{folder}/../{Path(folder).name}/{name}', link):
        result = run_main(capsys, 'knn', f'--eval.checkpoint={checkpoint}',
                          *data_args(small_beton), f'--eval.val_path={spelling}', '--knn.k=5')
        assert (result['leave_one_out'], result['k'], result['top1']) == \
            (True, 5, same['top1']), spelling
        # the training monitor takes "the val set is the bank" from the loaders' identity
        loaders = checked_eval_loaders(small_beton, str(spelling), ('logging.knn_train_path',
                                                                    'logging.knn_val_path'),
                                       8, 32, 1)
        assert loaders[str(spelling)] is loaders[small_beton]


def test_a_val_set_whose_class_names_cannot_be_compared_is_warned_about(trained, small_beton,
                                                                        label_betons, tmp_path,
                                                                        capsys):
    """The shifted val set copied without its sidecar (or with one that is not JSON) used to
    score its 0 % silently: the numbering check cannot be made, and one line says so."""
    _, checkpoint = trained
    copy = tmp_path / 'shifted.beton'
    copy.write_bytes(Path(label_betons['shifted']).read_bytes())
    assert main(['knn', f'--eval.checkpoint={checkpoint}', *data_args(small_beton),
                 f'--eval.val_path={copy}', '--knn.k=5']) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"warning: the class numbering of eval.val_path {copy} could not be compared with "
        f"eval.train_path {small_beton}'s ({copy}.json is missing): labels that name other "
        f"classes in the two sets would score as wrong answers"]
    assert json.loads(captured.out)['val_path'] == str(copy)
    Path(f'{copy}.json').write_text('not JSON\n')
    check_same_classes(str(copy), small_beton, 'eval.train_path', 'eval.val_path')
    assert capsys.readouterr().err.splitlines() == [
        f"warning: the class numbering of eval.val_path {small_beton} could not be compared "
        f"with eval.train_path {copy}'s (cannot read sidecar {copy}.json: not JSON (Expecting "
        f"value: line 1 column 1 (char 0))): labels that name other "
        f"classes in the two sets would score as wrong answers"]


@pytest.fixture(scope='module')
def sparse_label_betons(small_beton, module_tmp):
    """``{top label: .beton}``: the photos of ``small_beton`` from list files, its first 8
    labelled 0 and the other 8 labelled 1, 20000 or 3000000000 (a list may give any label)."""
    from writers.write_images import write_images
    root = module_tmp.mktemp('sparse')
    sources = [s['source'] for s in json.loads(Path(small_beton + '.json').read_text())['samples']]
    betons = {}
    for top in (1, 20000, 3000000000):
        listing = root / f'{top}.txt'
        listing.write_text(''.join(f'{source} {0 if i < 8 else top}\n'
                                   for i, source in enumerate(sources)))
        betons[top] = root / f'{top}.beton'
        write_images(str(listing), str(betons[top]), max_resolution=96, workers=1,
                     progress=False)
    return betons


def test_sparse_labels_are_scored_as_the_classes_present(trained, sparse_label_betons, capsys):
    """Labels {0, 20000} gave 20001 classes (num_classes 20001, a top 5 of 100 % on 2
    classes); {0, 3e9} a traceback allocating 192 GB. Two classes are two classes."""
    _, checkpoint = trained
    results = {top: [run_main(capsys, command, f'--eval.checkpoint={checkpoint}',
                              *data_args(beton), setting)
                     for command, setting in (('knn', '--knn.k=5'),
                                              ('linear', '--linear.epochs=5'))]
               for top, beton in sparse_label_betons.items()}
    dense_knn, dense_linear = results[1]
    assert dense_knn['top5'] is None and dense_linear['num_classes'] == 2
    for knn, linear in results.values():
        assert (knn['top1'], knn['top5']) == (dense_knn['top1'], None)
        assert (linear['num_classes'], linear['top1'], linear['top5']) == \
            (2, dense_linear['top1'], None)


@pytest.fixture(scope='module')
def undecodable_beton(small_beton, module_tmp):
    """A copy of ``small_beton`` (and its sidecar) with every JPEG header zeroed in place."""
    import shutil

    from ffcv.reader import Reader
    path = module_tmp.mktemp('undecodable') / 'undecodable.beton'
    shutil.copy(small_beton, path)
    shutil.copy(small_beton + '.json', f'{path}.json')
    reader = Reader(str(path))
    with open(path, 'r+b') as handle:
        for meta in reader.metadata[f"f{list(reader.handlers).index('image')}"]:
            handle.seek(int(meta['data_ptr']))
            handle.write(b'\0' * 64)
    return str(path)


def test_a_set_none_of_whose_images_decode_is_refused(trained, small_beton, undecodable_beton,
                                                      tmp_path, capsys, assert_one_line_error):
    # it was warned about, then scored (black images against a bank: "top1": 25.0, exit 0)
    _, checkpoint = trained
    output = tmp_path / 'out' / 'result.json'
    for command, data in (('knn', [*data_args(small_beton),
                                   f'--eval.val_path={undecodable_beton}', '--knn.k=5']),
                          ('linear', [*data_args(undecodable_beton), '--linear.epochs=2'])):
        with pytest.raises(SystemExit) as exited:
            run_cli(main, [command, f'--eval.checkpoint={checkpoint}', *data,
                           f'--eval.output={output}'])
        assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                              stderr=capsys.readouterr().err),
                              f'none of the 16 images of {undecodable_beton} decoded')
        assert not output.parent.exists()


def test_memory_running_out_is_one_line(trained, small_beton, tmp_path, capsys, monkeypatch,
                                        assert_one_line_error):
    """An allocation that fails in feature extraction or in the probe's training used to end
    in a traceback. On the CPU the first convolution here sees its input 65536 times larger
    per side: a real allocation that no machine holds and that fails at once (a real
    eval.resolution=20000 would first fill ~15 GB with its batch before the conv's 25.6 GB
    failed); the probe gets CUDA's OutOfMemoryError."""
    import fastssl.evaluation as evaluation
    _, checkpoint = trained

    def huge_first_conv(*args):
        backbone = load_backbone(*args)
        backbone.conv1.register_forward_pre_hook(
            lambda conv, inputs: torch.nn.functional.interpolate(inputs[0], scale_factor=65536))
        return backbone

    def cuda_out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 64.00 GiB')

    output = tmp_path / 'out' / 'result.json'
    load_backbone = evaluation.load_backbone
    for patch, command, setting, needles in (
            (('load_backbone', huge_first_conv), 'knn', '--knn.k=5',
             [f'out of memory extracting the features of {small_beton} with eval.batch_size 8 '
              f'at eval.resolution 32 on cpu: use a smaller eval.batch_size or '
              f'eval.resolution']),
            (('train_linear_probe', cuda_out_of_memory), 'linear', '--linear.epochs=2',
             ['out of memory training the linear probe on 16 x 512 features of 4 classes on '
              'cpu: use a smaller linear.batch_size'])):
        with monkeypatch.context() as patched:
            patched.setattr(evaluation, *patch)
            with pytest.raises(SystemExit) as exited:
                run_cli(main, [command, f'--eval.checkpoint={checkpoint}',
                               *data_args(small_beton), '--eval.device=cpu', setting,
                               f'--eval.output={output}'])
        assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                              stderr=capsys.readouterr().err), *needles)
        assert not output.parent.exists()
    # any other RuntimeError is a bug and keeps its traceback
    with pytest.raises(RuntimeError, match='shapes cannot be multiplied'):
        with evaluation.memory_refusal('extracting', 'use less'):
            torch.ones(2, 3) @ torch.ones(2, 3)
