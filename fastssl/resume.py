"""Resuming a run: where it continues (epoch, and step within it) and whether the checkpoint
was written by a run with the same settings.

A checkpoint carries its run's resolved config. On resume every key is compared with the
current one; keys outside :data:`MAY_DIFFER` must match, and all those that do not are named
with both values in one error (loading the tensors of another configuration would otherwise
fail inside torch, or worse, succeed and train something else).
"""
from fastssl_common.errors import UserError
from fastssl_common.numbers import is_number

from .checkpoint import latest_checkpoint, load_checkpoint, set_rng_state
from .config_loader import config_differences
from .rank_agreement import from_main

# What a resumed run may change: where it runs and reads from, how fast, what it logs, how long
# it trains (the cosine schedule then follows the new train.epochs), and the two remedies the
# non-finite-loss error suggests (a lower optim.lr, train.precision=fp32). Keys ending in '.'
# cover their whole section. Anything else changes what the checkpoint's state means.
MAY_DIFFER = ('train.resume', 'train.run_dir', 'train.epochs', 'train.checkpoint_every',
              'train.keep_checkpoints',
              'train.device', 'train.compile', 'train.channels_last', 'train.precision',
              'optim.lr', 'data.path', 'data.num_workers', 'data.os_cache', 'data.verify',
              'dist.', 'logging.')
# What fastssl.checkpoint.save_checkpoint writes and a resume reads.
TRAINING_STATE = ('next_epoch', 'model', 'optimizer', 'rng')


def may_differ(key):
    return any(key == free or (free.endswith('.') and key.startswith(free))
               for free in MAY_DIFFER)


def _shown(differences):
    return ', '.join(f'{key}={old!r} (now {new!r})' for key, old, new in differences)


def compare_configs(path, saved, current):
    """The differences of keys that may change (shown when resuming); UserError naming every
    other key whose value differs. Keys the saved config lacks (added to fastssl since) are
    not compared; a checkpoint without a config is not checked."""
    if saved is None:
        return []
    differences = [(key, old, new) for key, old, new in config_differences(saved, current)
                   if old is not None]
    refused = [d for d in differences if not may_differ(d[0])]
    if refused:
        raise UserError(f'checkpoint {path} was written with another config: '
                        f'{_shown(refused)}; resume with its values or start a new '
                        f'train.run_dir')
    return [d for d in differences if d[0] != 'train.resume']


def _count(value, least=0):
    return is_number(value, integer=True) and value >= least


# The shape of each entry save_checkpoint writes (absent optional ones pass): one that fits
# none was edited or damaged, and would fail deep inside torch's loaders instead.
ENTRY_SHAPES = {
    'next_epoch': _count,
    'next_step': _count,
    'steps_per_epoch': lambda v: v is None or _count(v, 1),
    'data_digest': lambda v: v is None or isinstance(v, str),
    'model': lambda v: isinstance(v, dict),
    'optimizer': lambda v: isinstance(v, dict) and isinstance(v.get('state'), dict)
    and isinstance(v.get('param_groups'), list),
    'scaler': lambda v: v is None or isinstance(v, dict),
    'rng': lambda v: isinstance(v, dict) and all(k in v for k in ('torch', 'numpy', 'python')),
}


def check_training_checkpoint(path, state):
    """UserError unless ``state`` (loaded from ``path``) is what this trainer's checkpoints
    hold: an exported backbone or another project's checkpoint cannot be resumed, nor one
    whose entries are not of the shape :data:`ENTRY_SHAPES` gives."""
    if not (isinstance(state, dict) and all(key in state for key in TRAINING_STATE) and
            isinstance(state.get('config'), (dict, type(None)))):
        held = (', '.join(sorted(map(str, state))[:6]) if isinstance(state, dict)
                else type(state).__name__)
        raise UserError(f'{path} is not a fastssl training checkpoint (it holds '
                        f'{held or "nothing"}): an exported backbone or a checkpoint of another '
                        f'project cannot be resumed')
    for key, fits in ENTRY_SHAPES.items():
        if key in state and not fits(state[key]):
            raise UserError(f'checkpoint {path}: invalid {key!r} entry (damaged or edited?)')


def check_same_data(path, state, data_path, data_digest):
    """UserError unless ``data_path`` (whose ``tables_digest`` is ``data_digest``) holds the
    samples the checkpoint at ``path`` was trained on: a moved copy passes, another dataset or
    the file rewritten since does not (it could load and train on, with the order, the queue
    and the epoch position all meaning something else). Checkpoints without a digest pass."""
    saved = state.get('data_digest')
    if saved is None or saved == data_digest:
        return
    old = (state.get('config') or {}).get('data', {}).get('path')
    if old in (None, data_path):
        raise UserError(f'data.path={data_path} was rewritten after checkpoint {path} was '
                        f'written (its sample and allocation tables differ): resume on the '
                        f'data the run was started on, or start a new train.run_dir')
    raise UserError(f'data.path={data_path} is not the data checkpoint {path} was trained on '
                    f'({old}): their sample and allocation tables differ; resume on {old} or '
                    f'a copy of it, or start a new train.run_dir')


def start_position(world, settings, model, optimizer, scaler, steps_per_epoch,
                   data_digest=None):
    """-> (epoch, step within it, the resume line or None) the run starts at. With
    ``train.resume``, where the last checkpoint in ``train.run_dir`` left off, its state
    loaded into model, optimizer, scaler and the RNGs; else (0, 0, None), and a run_dir that
    already holds checkpoints is refused. The caller prints the line once every check passed.
    ``steps_per_epoch`` is this run's: a mid-epoch checkpoint needs the same to continue;
    ``data_digest`` is data.path's (:func:`check_same_data`)."""
    run_dir = settings.train.run_dir
    if not settings.train.resume:
        if from_main(world, lambda: latest_checkpoint(run_dir)):
            raise UserError(f'{run_dir} already holds checkpoints: pass --train.resume=true '
                            f'to continue, or pick another train.run_dir')
        return 0, 0, None

    def read():
        path = latest_checkpoint(run_dir)
        if path is None:
            raise UserError(f'train.resume is set but {run_dir} has no checkpoint')
        return path, load_checkpoint(path, map_location='cpu')
    # rank 0 reads (run_dir need not be shared between machines) and sends it to all
    path, state = from_main(world, read)
    check_training_checkpoint(path, state)
    changed = compare_configs(path, state.get('config'), settings.to_dict())
    check_same_data(path, state, settings.data.path, data_digest)
    epoch, step = state['next_epoch'], state.get('next_step', 0)
    if epoch > settings.train.epochs:       # equal: a finished run, resumed, has nothing to do
        raise UserError(f'checkpoint {path} has finished {epoch} epochs, more than '
                        f'train.epochs={settings.train.epochs}: raise train.epochs to train '
                        f'on, or start a new train.run_dir')
    if step and state['steps_per_epoch'] != steps_per_epoch:
        raise UserError(f"checkpoint {path} stopped after step {step} of the "
                        f"{state['steps_per_epoch']} of epoch {epoch + 1}, but an epoch of "
                        f"{settings.data.path} now has {steps_per_epoch} steps: a run stopped "
                        f"mid-epoch continues on the same data")
    saved = state['model'].get('queues')
    if saved is not None and saved.shape[1:] != model.queues.shape[1:] \
            and saved.shape[2:] == model.queues.shape[2:]:
        # moco.queue_size is clamped to what one epoch of data.path fills
        raise UserError(f'checkpoint {path} holds a queue of {saved.shape[1]} keys, but '
                        f'{settings.data.path} fills only {model.queues.shape[1]} (moco.'
                        f'queue_size is clamped to what one epoch fills): resume on the data '
                        f'the run was started on')
    try:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        detail = ' '.join(str(err).split())[:300]  # torch's first line ends at a colon
        raise UserError(f'checkpoint {path} does not match the model: {detail}') from None
    try:
        if state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        set_rng_state(state['rng'])
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        detail = ' '.join(str(err).split())[:300]
        raise UserError(f'checkpoint {path}: its GradScaler or RNG state cannot be restored '
                        f'({type(err).__name__}: {detail}; damaged or edited?)') from None
    note = f' (changed: {_shown(changed)})' if changed else ''
    if epoch == settings.train.epochs:
        return epoch, step, (f'{path} has finished all {epoch} epochs of the run: nothing to '
                             f'train (raise train.epochs to train on){note}')
    where = f'epoch {epoch + 1}' + (f', step {step + 1}' if step else '')
    return epoch, step, f'resuming from {path} at {where}{note}'

