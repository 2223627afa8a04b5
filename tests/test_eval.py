"""eval.py knn: loads a training checkpoint and reproduces the trainer's own kNN monitor."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from fastssl.config import load_settings
from fastssl.evaluation import knn_evaluation
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError
from tests.cli import REPO, assert_one_line_error, run_script
from tests.test_train import tiny_args


@pytest.fixture(scope='module')
def trained(small_beton, tmp_path_factory):
    run = tmp_path_factory.mktemp('eval_run')
    trainer = Trainer(load_settings(tiny_args(
        small_beton, run, '--train.epochs=1', '--augment.placement=none',
        f'--logging.knn_train_path={small_beton}', '--logging.knn_k=5')))
    trainer.fit()
    return trainer, str(run / 'checkpoint_last.pt')


def test_knn_of_checkpoint_equals_trainer_monitor(trained, small_beton, tmp_path):
    trainer, checkpoint = trained
    expected = trainer.evaluate_knn()
    settings = SimpleNamespace(checkpoint=checkpoint, train_path=small_beton, val_path='',
                               resolution=32, batch_size=8, num_workers=1, device='cpu',
                               precision='fp32', output=str(tmp_path / 'knn.json'))
    result = knn_evaluation(settings, k=5, temperature=0.07)
    assert (result['top1'], result['top5']) == pytest.approx(expected)
    assert json.loads((tmp_path / 'knn.json').read_text())['top1'] == result['top1']


def test_eval_cli_and_its_bad_inputs(trained, small_beton, tmp_path):
    _, checkpoint = trained
    cmd = [sys.executable, os.path.join(REPO, 'eval.py'), 'knn']
    ok = subprocess.run(cmd + [f'--eval.checkpoint={checkpoint}',
                               f'--eval.train_path={small_beton}', '--eval.resolution=32',
                               '--eval.batch_size=8', '--eval.num_workers=1', '--knn.k=5'],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert 0 <= json.loads(ok.stdout)['top1'] <= 100
    missing = subprocess.run(cmd + [f'--eval.checkpoint={tmp_path}/none.pt',
                                    f'--eval.train_path={small_beton}'],
                             capture_output=True, text=True, timeout=300)
    assert_one_line_error(missing, 'none.pt')
    assert_one_line_error(run_script('eval.py', 'knnn'), "unknown command 'knnn'", 'knn')
    helped = run_script('eval.py', 'knn', '--help')
    assert helped.returncode == 0 and '--knn.temperature' in helped.stdout
    with pytest.raises(UserError, match='not a fastssl training checkpoint'):
        torch.save({'weights': 1}, tmp_path / 'foreign.pt')
        from fastssl.evaluation import load_query_encoder
        load_query_encoder(str(tmp_path / 'foreign.pt'), torch.device('cpu'))
