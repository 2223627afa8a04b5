"""eval.py over a real training checkpoint: knn reproduces the trainer's own kNN monitor;
export, knn and linear end to end; one-line errors for bad input."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from eval import main
from fastssl.config import load_settings
from fastssl.evaluation import knn_evaluation
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError, run_cli


@pytest.fixture(scope='module')
def trained(small_beton, tmp_path_factory, tiny_args):
    run = tmp_path_factory.mktemp('eval_run')
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
