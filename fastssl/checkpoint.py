"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the MoCo module (query and key encoders, queue, queue pointer), the
optimizer (SGD momentum buffers), the GradScaler, the RNG states and the epoch to run next.
The lr schedule is a pure function of (epoch, step), so it needs no state of its own. Data
order and augment draws are keyed on (seed, epoch, index) and need none either.
"""
import glob
import os
import random

import numpy as np
import torch

from fastssl_common.atomic import atomic_path
from fastssl_common.errors import UserError

LAST = 'checkpoint_last.pt'


def rng_state():
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(),
             'python': random.getstate()}
    if torch.cuda.is_available():
        # this process's device only: a run resumed on another number of GPUs restores it
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']  # older checkpoints hold a list, one state per visible GPU
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, (list, tuple)) else cuda)


def save_checkpoint(run_dir, epoch, model, optimizer, scaler, config):
    """Save after finishing ``epoch`` (0-based): as checkpoint_eEEEE.pt and checkpoint_last.pt."""
    state = {'next_epoch': epoch + 1, 'model': model.state_dict(),
             'optimizer': optimizer.state_dict(),
             'scaler': scaler.state_dict() if scaler is not None else None,
             'rng': rng_state(), 'config': config}
    path = os.path.join(run_dir, f'checkpoint_e{epoch + 1:04d}.pt')
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    with atomic_path(os.path.join(run_dir, LAST)) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path, map_location='cpu'):
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__})") from None


def latest_checkpoint(run_dir):
    """Path of the run's last checkpoint, or None when the run has none."""
    last = os.path.join(run_dir, LAST)
    if os.path.isfile(last):
        return last
    numbered = sorted(glob.glob(os.path.join(run_dir, 'checkpoint_e*.pt')))
    return numbered[-1] if numbered else None
