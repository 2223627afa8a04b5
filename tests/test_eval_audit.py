"""eval.py as a researcher uses it after training, at the edges: a list file's labels against a
folder's classes, a run folder given as a checkpoint, outputs that collide, and a file system
that refuses the export's file."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from eval import main
from fastssl.evaluation import check_same_classes
from fastssl_common.errors import run_cli
from writers.write_images import write_images


def one_line_error(capsys, assert_one_line_error, argv, *needles):
    """``eval.py argv`` in this process must end with one error line naming ``needles``."""
    with pytest.raises(SystemExit) as exited:
        run_cli(main, argv)
    assert_one_line_error(SimpleNamespace(returncode=exited.value.code,
                                          stderr=capsys.readouterr().err), *needles)


def reversed_list_beton(small_beton, tmp_path):
    """A .beton of every 4th photo of ``small_beton`` from a list file whose labels are
    ``3 - label``: its labels name no class, and number the classes otherwise."""
    samples = json.loads(Path(small_beton + '.json').read_text())['samples'][::4]
    listing = tmp_path / 'reversed.txt'
    listing.write_text(''.join(f"{s['source']} {3 - s['label']}\n" for s in samples))
    listed = str(tmp_path / 'reversed.beton')
    write_images(str(listing), listed, max_resolution=32, workers=1, progress=False)
    return listed


def test_a_list_files_labels_against_a_folders_classes_are_warned_about(small_beton, tmp_path,
                                                                         capsys):
    """A list file's labels name no class (its sidecar's classes are []): against a folder's
    .beton the numbering cannot be compared. As the val set it was passed silently (labels 3-c
    scored 0 %), as the train set refused ("the train set's is no class") even when its
    labels were the folder's own."""
    listed = reversed_list_beton(small_beton, tmp_path)
    for train, val in ((small_beton, listed), (listed, small_beton)):
        check_same_classes(train, val, 'eval.train_path', 'eval.val_path')
        assert capsys.readouterr().err.splitlines() == [
            f"warning: the class numbering of eval.val_path {val} could not be compared with "
            f"eval.train_path {train}'s ({listed} was written from a list file: its labels "
            f"name no class): labels that name other classes in the two sets would score as "
            f"wrong answers"]
    # two list files number with the user's own integers: nothing to compare, nothing said
    check_same_classes(listed, listed, 'eval.train_path', 'eval.val_path')
    assert capsys.readouterr().err == ''


def test_a_val_set_beside_another_files_sidecar_is_warned_about(small_beton, tmp_path, capsys):
    """A val set of reversed labels beside a copy of the train set's sidecar passed the class
    check silently: the sidecar named the train set's classes, not its own."""
    val = reversed_list_beton(small_beton, tmp_path)
    Path(f'{val}.json').write_text(Path(small_beton + '.json').read_text())
    check_same_classes(small_beton, val, 'eval.train_path', 'eval.val_path')
    assert capsys.readouterr().err.splitlines() == [
        f"warning: the class numbering of eval.val_path {val} could not be compared with "
        f"eval.train_path {small_beton}'s ({val} holds 4 samples, its sidecar {val}.json "
        f"records 16: the sidecar of another file): labels that name other classes in the two "
        f"sets would score as wrong answers"]

def test_a_run_folder_given_as_a_checkpoint_is_named_a_folder(tmp_path, capsys,
                                                              assert_one_line_error):
    # it said "checkpoint not found" of a folder that is there (knn and export name it)
    run = tmp_path / 'run'
    run.mkdir()
    one_line_error(capsys, assert_one_line_error,
                   ['invariance', '--invariance.kind=folders', f'--invariance.root={tmp_path}',
                    f'--invariance.checkpoints={run}'],
                   f'invariance.checkpoints: checkpoint {run} is a folder, not a file')


@pytest.mark.parametrize('key', ['output', 'plot'])
def test_an_invariance_file_output_that_is_the_run_dir_is_refused_as_such(
        key, tmp_path, capsys, assert_one_line_error):
    # run_dir was made first, then the file was refused as "a folder" the user never had
    checkpoint = tmp_path / 'a.pth'
    checkpoint.write_bytes(b'')
    both = tmp_path / 'out.png'
    one_line_error(capsys, assert_one_line_error,
                   ['invariance', '--invariance.kind=rendered', f'--invariance.root={tmp_path}',
                    f'--invariance.checkpoints={checkpoint}', f'--invariance.{key}={both}',
                    f'--invariance.run_dir={both}'],
                   f'invariance.{key} and invariance.run_dir are both {both}: give a file and '
                   f'a folder')
    assert not both.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason='root is let into /proc, which then refuses '
                                              'the file; others are refused up front')
def test_export_into_a_file_system_that_refuses_the_file_is_one_line(tmp_path, capsys,
                                                                     assert_one_line_error):
    """torch.save given a path hides the OS's error (ENOENT here; a quota's EDQUOT alike)
    behind a RuntimeError, which ended in a traceback: not a full disk, so nothing named it."""
    checkpoint = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    one_line_error(capsys, assert_one_line_error,
                   ['export', f'--export.checkpoint={checkpoint}', '--export.out=/proc/b.pth'],
                   'cannot write /proc/b.pth: No such file or directory')


@pytest.mark.parametrize('argv, hint', [
    (['knn', '--linear.epochs=3'], r'\(a setting of eval.py linear\)'),
    (['invariance', '--knn.k=3'], r'\(a setting of eval.py knn\)'),
    (['export', '--eval.train_path=a.beton'], r'\(a setting of eval.py knn and eval.py linear\)'),
    (['export', '--eval.checkpoint=a.pt'], r'\(did you mean export.checkpoint\?\)'),
])
def test_a_key_of_another_command_names_that_command(tmp_path, argv, hint):
    """``--linear.epochs`` given to knn was only an unknown key: the user had the key right
    and the command wrong. In a config file as on the command line."""
    from fastssl_common.errors import UserError

    with pytest.raises(UserError, match=rf"^unknown config key '.*' on the command line {hint}$"):
        main(argv)
    section, setting = argv[1][2:].split('=')[0].split('.')
    config = tmp_path / 'c.yaml'
    config.write_text(f'{section}:\n  {setting}: 1\n')
    with pytest.raises(UserError, match=rf"^unknown config key '.*' in {config} {hint}$"):
        main([argv[0], f'--config-file={config}'])
