"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the MoCo module (query and key encoders, queue, queue pointer), the
optimizer (SGD momentum buffers), the GradScaler, the RNG states and where the run continues:
the next epoch and, for a checkpoint written mid-epoch (a run stopped by a signal), the next
step within it. Rank 0 writes it; resuming is ``fastssl.resume``.
The lr schedule is a pure function of (epoch, step), so it needs no state of its own. Data
order and augment draws are keyed on (seed, epoch, index) and need none either.
"""
import codecs
import contextlib
import glob
import os
import random

import numpy as np
import torch

from fastssl_common.atomic import atomic_path
from fastssl_common.errors import UserError
from fastssl_common.locks import held_folder
from fastssl_common.torch_files import ZIP_MAGIC, check_archive

LAST = 'checkpoint_last.pt'
# How a file torch.save wrote begins: a zip archive, or (the legacy format) a pickle
TORCH_MAGIC = (ZIP_MAGIC, b'\x80')


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


def save_checkpoint(run_dir, epoch, model, optimizer, scaler, config, step=None,
                    steps_per_epoch=None, data_digest=None, keep=0):
    """Save after finishing ``epoch`` (0-based) as checkpoint_eEEEE.pt and checkpoint_last.pt;
    with ``step``, after that many steps of ``epoch`` (of ``steps_per_epoch``), as
    checkpoint_last.pt only (the numbered files are epoch ends). ``data_digest``: the training
    file's ``tables_digest``, which a resume compares. ``keep`` > 0: the numbered files beyond
    the newest ``keep`` are removed once the new ones are written (each holds both encoders
    and the optimizer: hundreds of MB). Returns the path."""
    state = {'next_epoch': epoch + 1 if step is None else epoch, 'next_step': step or 0,
             'steps_per_epoch': steps_per_epoch, 'data_digest': data_digest,
             'model': model.state_dict(),
             'optimizer': optimizer.state_dict(),
             'scaler': scaler.state_dict() if scaler is not None else None,
             'rng': rng_state(), 'config': config}
    paths = [os.path.join(run_dir, LAST)]
    if step is None:
        paths.insert(0, os.path.join(run_dir, f'checkpoint_e{epoch + 1:04d}.pt'))
    for path in paths:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    if keep and step is None:
        for old in numbered_checkpoints(run_dir)[:-keep]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(old)
    return paths[0]


def check_torch_file(path, checksums=True):
    """UserError unless ``path`` is a file that torch.save could have written, saying what
    it is instead (torch's own error for, say, a YAML file talks of weights-only loading).
    With ``checksums``, a zip archive (torch.save's format) must also pass its CRC-32 checks
    (:func:`check_archive`); legacy pickle files have none and are accepted as they are."""
    if not os.path.isfile(path):
        raise UserError(f'checkpoint {path} is a folder, not a file' if os.path.isdir(path)
                        else f'checkpoint not found: {path}')
    try:
        with open(path, 'rb') as handle:
            head = handle.read(4096)
    except OSError as err:
        raise UserError(f'cannot read checkpoint {path}: {err.strerror}') from None
    if head.startswith(TORCH_MAGIC):
        if checksums and head.startswith(ZIP_MAGIC):
            check_archive(path)
        return
    kind = 'an empty file' if not head else 'a text file' if _is_text(head) else (
        'binary data that torch.save does not write')
    raise UserError(f'{path} is not a PyTorch checkpoint ({kind})')


def _is_text(head):
    try:  # incremental: the block may end inside a character
        codecs.getincrementaldecoder('utf-8')().decode(head)
    except UnicodeDecodeError:
        return False
    return b'\x00' not in head


def load_checkpoint(path, map_location='cpu'):
    check_torch_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise UserError(f'{path} is not a readable checkpoint ({type(err).__name__})') from None


def hold_run_dir(run_dir):
    """Hold ``run_dir`` for one training run; UserError if another run holds it
    (:func:`fastssl_common.locks.held_folder`)."""
    return held_folder(run_dir, f'{run_dir} is in use by another training run: wait for it '
                                f'to end, or pick another train.run_dir')


def check_run_dir_free(run_dir):
    """UserError when another training run holds ``run_dir`` (which ``Trainer.fit`` then
    holds): said before a resume reads its checkpoints, or a fresh run finds them there."""
    if os.path.isdir(run_dir):
        with hold_run_dir(run_dir):
            pass


def latest_checkpoint(run_dir):
    """Path of the run's last checkpoint, or None when the run has none; UserError where a
    folder has its name (it would not be read, and no checkpoint could be written there)."""
    last = os.path.join(run_dir, LAST)
    if os.path.isfile(last):
        return last
    if os.path.isdir(last):
        raise UserError(f'{last} is a folder, not a checkpoint: move it out of the way')
    numbered = numbered_checkpoints(run_dir)
    return numbered[-1] if numbered else None


def numbered_checkpoints(run_dir):
    """The run's checkpoint_eEEEE.pt files, oldest first."""
    return sorted(glob.glob(os.path.join(run_dir, 'checkpoint_e*.pt')))


def state_tensors(model, optimizer):
    """(name, tensor) of the training state a checkpoint holds: the MoCo module (both
    encoders, queues) and the optimizer's momentum buffers."""
    yield from model.state_dict().items()
    for index, state in optimizer.state_dict()['state'].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                yield f'optimizer.{index}.{key}', value
