"""Device and autocast precision from config strings, shared by train.py and eval.py.

Kept apart from the trainer so that evaluation commands do not import FFCV's training
pipeline (Numba compiles at import) just to pick a device. ``key`` names the config key in
error messages (``train.device``, ``eval.device``, ...).
"""
import torch

from fastssl_common.errors import UserError


def resolve_device(name, key='train.device'):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    # torch names more device types (meta, xpu, ...) than fastssl runs on
    if device is None or device.type not in ('cpu', 'cuda'):
        raise UserError(f"{key} '{name}' is not a device (auto/cpu/cuda/cuda:N)")
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f"{key} is '{name}' but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{key} is '{name}' but this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_precision(precision, device, key='train.precision'):
    """-> autocast dtype or None (fp32); 'auto' is bf16 on GPUs that support it."""
    if precision == 'auto':
        if device.type == 'cuda' and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == 'fp16' and device.type != 'cuda':
        raise UserError(f'{key}=fp16 needs a CUDA device (use bf16 or fp32 on CPU)')
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]
