"""Data-parallel training over processes started by ``torchrun``: the process group, gathers
in global-batch order, MoCo's shuffle-BN across ranks, and the start-up agreements.

Conventions every piece here relies on:

* **One global batch.** FFCV's ``distributed=True`` loader shards an epoch's order like
  ``DistributedSampler``: rank r takes samples r, r + W, r + 2W, ... So rank r's i-th sample
  is sample ``i * W + r`` of the global batch, and :func:`gather_global_batch` puts it back
  there. With that order the global batch of a step does not depend on the world size W
  (for a given sample order), and the keys enqueued by W ranks are the keys a single process
  enqueues for the same batch, in the same order.
* **Shuffle-BN** (MoCo §3.3): BatchNorm statistics of one rank's key batch must not come from
  the same samples as its query batch, or the network learns to spot its positive by the
  shared statistics. The key batch is gathered from all ranks, permuted by one random order
  (rank 0's, broadcast), each rank encodes its share, and the encoded keys are gathered and
  un-permuted back to their owners. A rank takes every W-th sample of the permuted batch
  (as the loader does), which makes its BN group the same samples as group r of
  ``SplitBatchNorm`` with ``num_splits = W`` on one device for the same permutation: the
  single-device remedy and this one are the same computation.
* **Faults.** Collectives get a timeout (``init_process_group(timeout=...)``), so a rank that
  died or stalled makes the others stop with :class:`PeerLost` (one line naming the rank and
  the collective's complaint) instead of waiting forever. With NCCL the watchdog enforces
  the same timeout and ends the process with its own message.
* Decisions only rank 0 can make, and checks that every rank holds the same config and
  state, are in ``fastssl.rank_agreement``.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment, or 1) there is no process group
and every function here is the single-process identity.
"""
import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from fastssl_common.errors import UserError

TORCHRUN_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


class PeerLost(UserError):
    """A collective failed or timed out: another rank died or stalled."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    device: torch.device = torch.device('cpu')
    local_size: int = 1   # ranks on this machine

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.size > 1


def launched_world_size():
    """The number of processes torchrun started (1 when not under torchrun)."""
    try:
        return int(os.environ.get('WORLD_SIZE', '1'))
    except ValueError:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def setup(device, timeout_s):
    """Join the process group torchrun describes (NCCL for CUDA, gloo for CPU); returns the
    World. ``device`` is the resolved ``train.device``; under torchrun a CUDA run uses
    ``cuda:LOCAL_RANK``, one GPU per process."""
    size = launched_world_size()
    if size <= 1:
        return World(device=device)
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise UserError(f"WORLD_SIZE={size} but {', '.join(missing)} not set: start "
                        f"several processes with torchrun (see docs/training.md)")
    rank, local_rank = int(os.environ['RANK']), int(os.environ['LOCAL_RANK'])
    if device.type == 'cuda':
        if device.index is not None:
            raise UserError(f'train.device={device} names one GPU, but torchrun started '
                            f'{size} processes: use train.device=cuda (or auto); each '
                            f'process takes cuda:LOCAL_RANK')
        if local_rank >= torch.cuda.device_count():
            raise UserError(f'LOCAL_RANK={local_rank} but this machine has '
                            f'{torch.cuda.device_count()} GPUs: lower --nproc_per_node')
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == 'cuda' else None)
    except (RuntimeError, ValueError) as err:
        raise PeerLost(f"rank {rank}: could not join the {backend} process group at "
                       f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} "
                       f"({_first_line(err)})") from None
    local_size = int(os.environ.get('LOCAL_WORLD_SIZE', size))
    return World(rank, local_rank, size, device, local_size)


def active():
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def teardown():
    if dist.is_initialized():
        dist.destroy_process_group()


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@contextlib.contextmanager
def peer_failures_reported(timeout_s, what='training'):
    """A failed or timed-out collective inside the block becomes :class:`PeerLost` (one line
    for ``run_cli``) instead of a traceback through DDP internals."""
    try:
        yield
    except RuntimeError as err:  # torch.distributed.DistError is a RuntimeError
        message = str(err)
        from_backend = isinstance(err, dist.DistError) or any(
            word in message for word in ('gloo', 'NCCL', 'ProcessGroup', 'Timed out'))
        if not (active() and from_backend):
            raise
        raise PeerLost(f'rank {dist.get_rank()}: a collective failed during {what}; another '
                       f'rank has probably died or stalled (its own log says why; '
                       f'dist.timeout_s={timeout_s}): {_first_line(err)}') from None


# ---------------------------------------------------------------------------- gathers

def _gather_dim0(x):
    """All ranks' ``x`` concatenated in rank order (W * B, ...), without autograd."""
    world = dist.get_world_size()
    # gather the layout the tensor already has: channels_last is NHWC-contiguous
    channels_last = (x.dim() == 4 and not x.is_contiguous()
                     and x.is_contiguous(memory_format=torch.channels_last))
    flat = x.permute(0, 2, 3, 1) if channels_last else x.contiguous()
    out = flat.new_empty((world * flat.shape[0],) + tuple(flat.shape[1:]))
    dist.all_gather_single(out, flat)
    return out.permute(0, 3, 1, 2) if channels_last else out


@torch.no_grad()
def gather_global_batch(x):
    """(B_local, ...) on every rank -> the global batch (W * B_local, ...) in single-process
    order: rank r's i-th row lands at row ``i * W + r`` (see the module docstring)."""
    if not active():
        return x
    world = dist.get_world_size()
    by_rank = _gather_dim0(x).unflatten(0, (world, x.shape[0]))  # (W, B, ...)
    interleaved = by_rank.transpose(0, 1).flatten(0, 1)           # row i * W + r
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return interleaved.contiguous(memory_format=torch.channels_last)
    return interleaved.contiguous()


@torch.no_grad()
def batch_shuffle_ddp(x):
    """Shuffle-BN, step 1: this rank's share of the randomly permuted global batch.

    Returns ``(share, perm)``: ``share[i]`` is global sample ``perm[i * W + rank]``; pass
    ``perm`` to :func:`batch_unshuffle_ddp`. Every rank draws ``randperm`` (the random
    streams stay in step across ranks) and uses rank 0's."""
    everything = gather_global_batch(x)
    perm = torch.randperm(everything.shape[0], device=x.device)
    dist.broadcast(perm, src=0)
    world, rank = dist.get_world_size(), dist.get_rank()
    return everything[perm[rank::world]], perm


@torch.no_grad()
def batch_unshuffle_ddp(y, perm):
    """Shuffle-BN, step 2: outputs computed on the shares go back to the ranks that own the
    samples, in their loader order: row i of the result belongs to global sample i * W + rank."""
    shuffled = gather_global_batch(y)           # row j = output for global sample perm[j]
    world, rank = dist.get_world_size(), dist.get_rank()
    inverse = torch.argsort(perm)               # row of global sample n in ``shuffled``
    return shuffled[inverse[rank::world]]


@torch.no_grad()
def mean_over_ranks(x):
    """The mean of ``x`` over ranks (``x`` itself in a single process)."""
    if not active():
        return x
    total = x.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


@torch.no_grad()
def average_batchnorm_statistics(module):
    """Average BatchNorm running statistics over ranks (one all-reduce per tensor).

    Under DDP with ``broadcast_buffers=False`` each rank's running statistics follow its own
    batches; training never reads them (train mode normalises with batch statistics), but
    evaluation and checkpoints do. Averaging gives every rank the same, better estimate."""
    if not active():
        return
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            for stat in (layer.running_mean, layer.running_var):
                stat.copy_(mean_over_ranks(stat))

