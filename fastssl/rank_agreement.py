"""Agreement between torchrun ranks: decisions only rank 0 can make, and checks that every
rank holds the same config and state.

Start-up decisions that only rank 0 can make (is there a checkpoint? is it readable?) are made
once on rank 0 and broadcast (:func:`from_main`), so every rank raises the same error or gets
the same answer; :func:`check_same_config` stops ranks that were started with different
settings before they train on different things, and :func:`check_same_state` proves that the
checkpoint rank 0 writes is every rank's state. Without torchrun each is the single-process
identity (or a no-op).
"""
import hashlib
import json

import torch
import torch.distributed as dist

from fastssl_common.errors import UserError

from .config_loader import config_differences


def from_main(world, fn):
    """Run ``fn()`` on rank 0 only and give every rank its result; a UserError raised by
    ``fn`` is raised on every rank with the same message. The result must be picklable."""
    if not world.distributed:
        return fn()
    box = [None]
    if world.is_main:
        try:
            box[0] = ('ok', fn())
        except UserError as err:
            box[0] = ('error', str(err))
    dist.broadcast_object_list(box, src=0, device=_object_device(world))
    status, value = box[0]
    if status == 'error':
        raise UserError(value)
    return value


def _object_device(world):
    # NCCL moves pickled objects through the GPU; gloo through host memory
    return world.device if world.device.type == 'cuda' else torch.device('cpu')


def config_digest(config):
    """SHA-256 of a resolved config (nested dict), independent of key order."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def check_same_config(world, config):
    """UserError on every rank if any rank resolved a different config (e.g. a config file
    that differs between machines, or a different command line), naming the keys."""
    if not world.distributed:
        return
    digests = [None] * world.size  # (NCCL: objects travel through the current CUDA device)
    dist.all_gather_object(digests, config_digest(config))
    if len(set(digests)) == 1:
        return
    configs = [None] * world.size
    dist.all_gather_object(configs, config)  # only now: name the keys
    for rank, other in enumerate(configs[1:], start=1):
        differ = config_differences(configs[0], other)
        if differ:
            shown = ', '.join(f'{key}={theirs!r} (rank 0: {ours!r})'
                              for key, ours, theirs in differ[:4])
            more = f' and {len(differ) - 4} more' if len(differ) > 4 else ''
            raise UserError(f'ranks were started with different configs: rank {rank} has '
                            f'{shown}{more}; give every rank the same config file and flags')


def _digest(tensor):
    raw = tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy()
    return hashlib.blake2b(raw.tobytes(), digest_size=16).hexdigest()


def check_same_state(world, named_tensors, when):
    """UserError on every rank unless every rank holds bit-identical ``(name, tensor)``
    pairs (what rank 0 saves in a checkpoint must be the state of all ranks). DDP's averaged
    gradients, the gathered keys and the averaged BN statistics make them identical; a
    difference is a bug, so the message names the first tensors that differ."""
    if not world.distributed:
        return
    mine = {name: _digest(tensor) for name, tensor in named_tensors}
    everyone = [None] * world.size
    dist.all_gather_object(everyone, mine)
    for rank, theirs in enumerate(everyone[1:], start=1):
        differ = [name for name in everyone[0] if theirs.get(name) != everyone[0][name]]
        if differ:
            raise UserError(f"rank {rank} has diverged from rank 0 {when} ({len(differ)} "
                            f"tensors differ: {', '.join(differ[:3])}); this is a bug, "
                            f"please report it")
