"""MoCo v2 (He et al. 2020; Chen et al. 2020), on one screen, single device.

A query encoder learns by gradient; a key encoder is its exponential moving average, so keys
drift slowly and the queue of past keys stays consistent enough to serve as negatives. The
queue decouples the number of negatives from the batch size.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import Encoder
from .infonce import info_nce
from .split_batchnorm import convert_to_split_bn


class MoCo(nn.Module):
    def __init__(self, arch='resnet50', proj_hidden=0, proj_dim=128, queue_size=65536,
                 momentum=0.999, temperature=0.2, bn_splits=8):
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.encoder_q = convert_to_split_bn(Encoder(arch, proj_hidden, proj_dim), bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False  # updated by momentum only; no activations kept
        # Queue rows are keys; random unit vectors until real keys replace them.
        self.register_buffer('queue', F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self):
        """k <- m k + (1 - m) q over parameters (BN running statistics stay the key's own)."""
        q_params = list(self.encoder_q.parameters())
        k_params = list(self.encoder_k.parameters())
        torch._foreach_mul_(k_params, self.momentum)
        torch._foreach_add_(k_params, q_params, alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys):
        """Write keys at the pointer, wrapping around the end of the queue."""
        n, size = keys.shape[0], self.queue.shape[0]
        rows = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue.index_copy_(0, rows, keys.to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    @torch.no_grad()
    def encode_keys(self, im_k):
        """Key features with the batch shuffled, so split-BN groups differ from the queries'."""
        perm = torch.randperm(im_k.shape[0], device=im_k.device)
        k = self.encoder_k(im_k[perm])
        k = F.normalize(k.float(), dim=1)
        return k[torch.argsort(perm)]

    def forward(self, im_q, im_k):
        """Returns (loss, logits, keys); the caller enqueues the keys after the step."""
        q = F.normalize(self.encoder_q(im_q).float(), dim=1)
        self.momentum_update()  # before the key forward pass, as the official code
        k = self.encode_keys(im_k)
        # The queue is about to be modified in place by enqueue(); the loss's backward
        # must see the negatives used in the forward, hence the copy.
        loss, logits = info_nce(q, k, self.queue.clone().detach(), self.temperature)
        return loss, logits, k
