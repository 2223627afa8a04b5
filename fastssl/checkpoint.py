"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the MoCo module (query and key encoders, queue, queue pointer), the
optimizer (SGD momentum buffers), the GradScaler, the RNG states and the epoch to run next;
rank 0 writes it and, on resume, reads it for every rank.
The lr schedule is a pure function of (epoch, step), so it needs no state of its own. Data
order and augment draws are keyed on (seed, epoch, index) and need none either.
"""
import glob
import os
import random
import sys

import numpy as np
import torch

from fastssl_common.atomic import atomic_path
from fastssl_common.errors import UserError

from .rank_agreement import from_main

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
        raise UserError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise UserError(f'{path} is not a readable checkpoint ({type(err).__name__})') from None


def latest_checkpoint(run_dir):
    """Path of the run's last checkpoint, or None when the run has none."""
    last = os.path.join(run_dir, LAST)
    if os.path.isfile(last):
        return last
    numbered = sorted(glob.glob(os.path.join(run_dir, 'checkpoint_e*.pt')))
    return numbered[-1] if numbered else None


def state_tensors(model, optimizer):
    """(name, tensor) of the training state a checkpoint holds: the MoCo module (both
    encoders, queues) and the optimizer's momentum buffers."""
    yield from model.state_dict().items()
    for index, state in optimizer.state_dict()['state'].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                yield f'optimizer.{index}.{key}', value


def start_epoch(world, train, model, optimizer, scaler):
    """The epoch a run starts at. With ``train.resume``, the one after the last checkpoint in
    ``train.run_dir``, whose state goes into model, optimizer, scaler and the RNGs; else 0,
    and a run_dir that already holds checkpoints is refused."""
    run_dir = train.run_dir
    if not train.resume:
        if from_main(world, lambda: latest_checkpoint(run_dir)):
            raise UserError(f'{run_dir} already holds checkpoints: pass --train.resume=true '
                            f'to continue, or pick another train.run_dir')
        return 0

    def read():
        path = latest_checkpoint(run_dir)
        if path is None:
            raise UserError(f'train.resume is set but {run_dir} has no checkpoint')
        return path, load_checkpoint(path, map_location='cpu')
    # rank 0 reads (run_dir need not be shared between machines) and sends it to all
    path, state = from_main(world, read)
    try:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f'checkpoint {path} does not match the config: {first}') from None
    if state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    set_rng_state(state['rng'])
    if world.is_main:
        print(f"resuming from {path} at epoch {state['next_epoch']}", file=sys.stderr)
    return state['next_epoch']
