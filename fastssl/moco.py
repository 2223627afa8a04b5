"""MoCo v2 (He et al. 2020; Chen et al. 2020), on one screen, single device.

A query encoder learns by gradient; a key encoder is its exponential moving average, so keys
drift slowly and the queue of past keys stays consistent enough to serve as negatives. The
queue decouples the number of negatives from the batch size.

The objective may have several terms (the Region Tracker's frame pair and region pair): each
term is a (query view, key view) batch with its own InfoNCE loss against a queue. Terms share
one queue by default (every key is a negative for every term) or each has its own.

Under torchrun (``fastssl.distributed``) the same module runs on every rank: the key batch is
shuffled across ranks (shuffle-BN) instead of within split-BN groups, and the keys of every
rank are gathered before they are enqueued, so all ranks keep identical queues.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .encoder import Encoder
from .infonce import info_nce
from .split_batchnorm import convert_to_split_bn, forward_in_split_groups


class MoCo(nn.Module):
    def __init__(self, arch='resnet50', proj_hidden=0, proj_dim=128, queue_size=65536,
                 momentum=0.999, temperature=0.2, bn_splits=8, term_queues=(0,)):
        """``term_queues[t]`` is the queue of objective term t: (0,) one term; (0, 0) two
        terms sharing a queue; (0, 1) two terms with separate queues."""
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.term_queues = tuple(term_queues)
        self.bn_splits = bn_splits
        self.encoder_q = convert_to_split_bn(Encoder(arch, proj_hidden, proj_dim), bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False  # updated by momentum only; no activations kept
        # Queue rows are keys; random unit vectors until real keys replace them.
        n_queues = max(self.term_queues) + 1
        self.register_buffer('queues', F.normalize(torch.randn(n_queues, queue_size, proj_dim),
                                                   dim=2))
        self.register_buffer('queue_ptrs', torch.zeros(n_queues, dtype=torch.long))

    @property
    def queue(self):
        """The first (with one term, the only) queue, (K, D)."""
        return self.queues[0]

    @torch.no_grad()
    def momentum_update(self):
        """k <- m k + (1 - m) q over parameters (BN running statistics stay the key's own)."""
        q_params = list(self.encoder_q.parameters())
        k_params = list(self.encoder_k.parameters())
        torch._foreach_mul_(k_params, self.momentum)
        torch._foreach_add_(k_params, q_params, alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys, queue=0):
        """Write keys at the queue's pointer, wrapping around its end."""
        n, size = keys.shape[0], self.queues.shape[1]
        ptr = self.queue_ptrs[queue]
        rows = (ptr + torch.arange(n, device=keys.device)) % size
        self.queues[queue].index_copy_(0, rows, keys.to(self.queues.dtype))
        self.queue_ptrs[queue] = (ptr + n) % size

    @torch.no_grad()
    def enqueue_terms(self, keys_per_term):
        """Enqueue each term's keys into its queue (terms sharing a queue in term order).
        Under torchrun each term's keys are first gathered from all ranks in global-batch
        order: every rank enqueues what one process with the global batch would."""
        for queue in sorted(set(self.term_queues)):
            keys = [distributed.gather_global_batch(k)
                    for k, q in zip(keys_per_term, self.term_queues) if q == queue]
            self.enqueue(torch.cat(keys), queue)

    @torch.no_grad()
    def encode_keys(self, im_k):
        """Key features of a shuffled batch, un-shuffled: BatchNorm groups differ from the
        queries' (split-BN groups on one device, ranks under torchrun: shuffle-BN)."""
        if distributed.active():
            share, perm = distributed.batch_shuffle_ddp(im_k)
            k = F.normalize(self.encoder_k(share).float(), dim=1)
            return distributed.batch_unshuffle_ddp(k, perm)
        perm = torch.randperm(im_k.shape[0], device=im_k.device)
        # index_select, not im_k[perm]: torch.compile of torch <= 2.11 crashes on
        # x[torch.randperm(n)] (an Inductor pattern, pytorch/pytorch#183988); index_select
        # returns NCHW, so a channels-last batch is put back in its layout (the convolutions'
        # fast path)
        shuffled = im_k.index_select(0, perm)
        if im_k.is_contiguous(memory_format=torch.channels_last):
            shuffled = shuffled.contiguous(memory_format=torch.channels_last)
        k = forward_in_split_groups(self.encoder_k, shuffled, self.bn_splits)
        k = F.normalize(k.float(), dim=1)
        return k[torch.argsort(perm)]

    def forward(self, im_q, im_k):
        """One-term MoCo: returns (loss, logits, keys); the caller enqueues the keys after the
        step."""
        losses, logits, keys = self.forward_terms([(im_q, im_k)])
        return losses[0].mean(), logits[0], keys[0]

    def forward_terms(self, pairs):
        """``pairs``: one (im_q, im_k) batch per term, all of batch size B.

        Returns per-term lists: losses (B,) per sample (the caller weights and masks them),
        logits (B, 1 + K), normalised keys (B, D) to enqueue after the optimizer step. All
        terms go through each encoder as one batch: one forward per encoder per step.
        """
        n = len(pairs)
        if n != len(self.term_queues):
            raise ValueError(f'MoCo was built for {len(self.term_queues)} terms, got {n}')
        q = forward_in_split_groups(self.encoder_q, torch.cat([p[0] for p in pairs]),
                                    self.bn_splits)
        q = F.normalize(q.float(), dim=1)
        self.momentum_update()  # before the key forward pass, as the official code
        k = self.encode_keys(torch.cat([p[1] for p in pairs]))
        # The queues are about to be modified in place by enqueue(); the loss's backward
        # must see the negatives used in the forward, hence the copy.
        queues = self.queues.clone().detach()
        results = [info_nce(qt, kt, queues[queue], self.temperature, reduction='none')
                   for qt, kt, queue in zip(q.chunk(n), k.chunk(n), self.term_queues)]
        return [r[0] for r in results], [r[1] for r in results], list(k.chunk(n))
