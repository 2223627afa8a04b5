"""fastssl.device: config strings -> torch device and autocast dtype, with one-line errors
naming the config key; CUDA's presence is patched, so the checks are the same on any machine."""
import pytest
import torch

from eval import main as eval_main
from fastssl.config import PRECISIONS
from fastssl.device import resolve_device, resolve_precision
from fastssl_common.errors import UserError
from train import main as train_main


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)


def test_cpu_choices(no_gpu):
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto') == torch.device('cpu')


def test_auto_takes_the_gpu_when_there_is_one(gpu):
    assert resolve_device('auto') == torch.device('cuda')
    assert resolve_device('cuda:1', 'eval.device') == torch.device('cuda', 1)


def test_a_gpu_index_beyond_the_machine_names_the_count(gpu):
    with pytest.raises(UserError, match=r"^eval.device is 'cuda:2' but this machine has 2 CUDA"):
        resolve_device('cuda:2', 'eval.device')


@pytest.mark.parametrize('name', ['cuda', 'cuda:0', 'cuda:3'])
def test_cuda_without_a_gpu_names_the_key(no_gpu, name):
    with pytest.raises(UserError) as err:
        resolve_device(name, 'invariance.device')
    assert str(err.value) == f"invariance.device is '{name}' but CUDA is not available"
    with pytest.raises(UserError, match=f"^train.device is '{name}' but CUDA"):
        resolve_device(name)


@pytest.mark.parametrize('name', ['gpu', 'cuda:x', '', 'meta', 'xpu', 'cpu:1x'])
def test_not_a_device(name):
    with pytest.raises(UserError) as err:
        resolve_device(name, 'eval.device')
    assert str(err.value) == f"eval.device '{name}' is not a device (auto/cpu/cuda/cuda:N)"


def test_precision_on_cpu():
    cpu = torch.device('cpu')
    assert [resolve_precision(p, cpu) for p in PRECISIONS if p != 'fp16'] == \
        [None, None, torch.bfloat16]  # auto, fp32, bf16
    with pytest.raises(UserError) as err:
        resolve_precision('fp16', cpu, 'eval.precision')
    assert str(err.value) == 'eval.precision=fp16 needs a CUDA device (use bf16 or fp32 on CPU)'


@pytest.mark.parametrize('bf16, auto', [(True, torch.bfloat16), (False, None)])
def test_precision_on_cuda(monkeypatch, bf16, auto):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: bf16)
    cuda = torch.device('cuda')
    assert resolve_precision('auto', cuda) is auto
    assert (resolve_precision('fp16', cuda), resolve_precision('bf16', cuda),
            resolve_precision('fp32', cuda)) == (torch.float16, torch.bfloat16, None)


def test_the_scripts_name_their_own_key(no_gpu, tmp_path):
    """train.py and eval.py stop on a GPU request without one, before reading any data (a
    file that is not a dataset would be named if it were read first)."""
    (tmp_path / 'none.beton').write_bytes(b'not a dataset')
    with pytest.raises(UserError, match=r"^train\.device is 'cuda' but CUDA is not available"):
        train_main([f'--data.path={tmp_path}/none.beton', '--train.device=cuda',
                    f'--train.run_dir={tmp_path}/run'])
    with pytest.raises(UserError, match=r"^eval\.device is 'cuda:0' but CUDA is not available"):
        eval_main(['knn', f'--eval.checkpoint={tmp_path}/none.pt',
                   f'--eval.train_path={tmp_path}/none.beton', '--eval.device=cuda:0'])
    assert not (tmp_path / 'run').exists()
