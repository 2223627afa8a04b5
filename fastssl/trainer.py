"""The MoCo v2 training loop: FFCV pair loader -> augment -> channels-last AMP step -> logs.

Reads a resolved config (``fastssl.config.Settings``); ``train.py`` is a thin CLI over it.
Order of work per step, and why:
1. views arrive as uint8 (B, V, H, W, 3) from the decode-once loader (crops and flips done);
2. they are copied to the device and, with ``augment.placement=gpu``, photometrically
   augmented there in one batched pass (CPU threads stay free for decoding); the parameters
   come from the same counter-based draw as the CPU op, keyed on (seed, epoch, index);
3. MoCo forward/backward under autocast (bf16 on GPUs that support it), channels_last; the
   variant's terms (frame pair, region pair) go through each encoder as one batch, and the
   loss is their weighted sum (region terms averaged over the pairs that have a track);
4. keys are enqueued after the optimizer step;
5. non-finite losses are gathered on the device and checked every ``log_every`` steps (no
   per-step host sync); training stops with the exact step named.

Under ``torchrun`` (several processes, ``fastssl.distributed``) ``data.batch_size`` is the
global batch: each rank loads its own shard of every epoch (FFCV ``distributed=True``)
with batch_size / world pairs per step, so the lr (scaled by the global batch) and the
schedule do not depend on the number of ranks. DistributedDataParallel wraps the whole MoCo
module, as the official code does: its forward holds the momentum update, the shuffle-BN
collectives and the queue negatives, so one wrapped call keeps every rank in lockstep, and
DDP's start-up broadcast from rank 0 covers the key encoder and the queues too (on resume,
only rank 0 reads the checkpoint). Buffers are not re-broadcast each step
(``forward_sync_buffers=False``): the queues stay identical because the keys are all-gathered
before they are enqueued, and BatchNorm running statistics (unused in training) are averaged
over ranks at the end of every epoch. Rank 0 alone writes the config, TensorBoard logs and
checkpoints, which hold global state only and resume under any number of ranks.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import yaml
from tqdm import tqdm

from fastssl_common.atomic import ensure_writable_dir, atomic_path
from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import MultiViewLoader, open_beton
from loaders.photometric import make_strengths

from . import distributed
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from .device import resolve_device, resolve_precision
from .gpu_augment import GPUPhotometric
from .knn import extract_features, weighted_knn
from .moco import MoCo
from .monitor import Monitor, gpu_memory_gib
from .normalize import normalize, to_unit_float
from .variants import VARIANTS


class _TermsForward(torch.nn.Module):
    """What DDP wraps: DDP runs ``forward``; MoCo's multi-term entry point is
    ``forward_terms``."""

    def __init__(self, moco):
        super().__init__()
        self.moco = moco

    def forward(self, pairs):
        return self.moco.forward_terms(pairs)


def learning_rate(optim, epochs, epoch_progress, batch_size):
    """lr at fractional epoch: linear scaling by batch/256, linear warmup, cosine decay."""
    base = optim.lr * batch_size / 256
    if epoch_progress < optim.warmup_epochs:
        return base * epoch_progress / optim.warmup_epochs
    span = max(epochs - optim.warmup_epochs, 1e-8)
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch_progress - optim.warmup_epochs) / span))


def clamp_queue(queue_size, num_samples, batch_size, keys_per_sample=1):
    """Largest queue that one epoch fills without a sample meeting its own previous key in
    the same pass: K <= (N - B) * keys per sample (rounded down to a step's keys)."""
    step_keys = batch_size * keys_per_sample
    limit = max(step_keys, (num_samples - batch_size) // batch_size * step_keys)
    if queue_size > limit:
        print(f"warning: moco.queue_size={queue_size} exceeds what {num_samples} samples can "
              f"fill with batch {batch_size}; using {limit}", file=sys.stderr)
        return limit
    return queue_size


class Trainer:
    def __init__(self, settings):
        self.s = s = settings
        self.world = world = distributed.setup(resolve_device(s.train.device),
                                               s.dist.timeout_s)
        distributed.check_same_config(world, s.to_dict())
        self.device = world.device
        self.amp_dtype = resolve_precision(s.train.precision, self.device)
        placement = s.augment.placement
        if placement == 'auto':
            placement = 'gpu' if self.device.type == 'cuda' else 'cpu'
        self.placement = placement
        # one device: split-BN; several ranks: shuffle-BN across them (fastssl.moco)
        bn_splits = 1 if world.distributed else max(s.moco.bn_splits, 1)
        if s.data.batch_size % bn_splits:
            raise UserError(f"data.batch_size={s.data.batch_size} must be divisible by "
                            f"moco.bn_splits={s.moco.bn_splits}")
        if s.data.batch_size % world.size:
            raise UserError(f"data.batch_size={s.data.batch_size} (the global batch) must be "
                            f"divisible by the {world.size} torchrun processes")
        if world.distributed and s.data.order == 'quasi_random':
            raise UserError("data.order=quasi_random does not support several processes "
                            "(FFCV): use random")
        self.rank_batch = s.data.batch_size // world.size
        workers = s.data.num_workers
        if workers == 0 and world.distributed:  # all cores, shared by this machine's ranks
            workers = max(1, (os.cpu_count() or 1) // world.local_size)
        strength_kwargs = {name: getattr(s.augment, name) for name in (
            'brightness', 'contrast', 'saturation', 'hue', 'p_jitter', 'p_gray', 'p_blur',
            'sigma_min', 'sigma_max')}
        try:
            self.strengths = make_strengths(**strength_kwargs)
        except ValueError as err:
            raise UserError(f"augment section: {err}") from None
        self.gpu_augment = (GPUPhotometric(s.train.seed, **strength_kwargs)
                            if placement == 'gpu' else None)
        torch.manual_seed(s.train.seed)

        self.variant = variant = VARIANTS[s.train.variant]
        for key in ('frame_weight', 'region_weight'):
            weight = getattr(s.moco, key)
            if not (math.isfinite(weight) and weight >= 0):
                raise UserError(f"moco.{key} must be a finite number >= 0, got {weight}")
        hint = f"; train.variant={s.train.variant} needs a .beton from {variant.writer}"
        open_beton(s.data.path, variant.required, hint)
        region_valid, region_options = None, {}
        if variant.uses_regions:
            region_valid, region_options = self._region_options(variant)
        self.loader = MultiViewLoader(
            s.data.path, self.rank_batch, s.data.resolution, variant.view_fields,
            num_workers=workers, seed=s.train.seed, order=s.data.order,
            scale=(s.augment.crop_scale_min, s.augment.crop_scale_max),
            ratio=(s.augment.crop_ratio_min, s.augment.crop_ratio_max),
            flip_prob=s.augment.flip_prob,
            cpu_photometric=self.strengths if placement == 'cpu' else None,
            os_cache=s.data.os_cache, distributed=world.distributed, **region_options)
        # rt loads tracked pairs only; fti_rt masks the others out of its region term
        self.region_valid = (None if region_valid is None or 'indices' in region_options
                             else torch.from_numpy(region_valid).to(self.device))
        self.term_names = [name for name, _, _ in variant.terms]
        self.term_weights = [s.moco.region_weight if name == 'region' else s.moco.frame_weight
                             for name in self.term_names]
        # after the data checks: no empty run folders
        distributed.from_main(world, lambda: ensure_writable_dir(s.train.run_dir))
        n_terms = len(variant.terms)
        term_queues = tuple(range(n_terms)) if s.moco.separate_queues else (0,) * n_terms
        queue = clamp_queue(s.moco.queue_size, self.loader.num_samples, s.data.batch_size,
                            keys_per_sample=n_terms - max(term_queues))
        self.model = MoCo(s.model.arch, s.model.proj_hidden, s.model.proj_dim, queue,
                          s.moco.momentum, s.moco.temperature, bn_splits, term_queues)
        fmt = torch.channels_last if s.train.channels_last else torch.contiguous_format
        self.memory_format = fmt
        self.model.to(self.device, memory_format=fmt)
        self.optimizer = torch.optim.SGD(self.model.encoder_q.parameters(),
                                         lr=learning_rate(s.optim, s.train.epochs, 0.0,
                                                          s.data.batch_size),
                                         momentum=s.optim.momentum,
                                         weight_decay=s.optim.weight_decay)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.start_epoch = 0
        if s.train.resume:
            self._resume()
        elif distributed.from_main(world, lambda: latest_checkpoint(s.train.run_dir)):
            raise UserError(f"{s.train.run_dir} already holds checkpoints: pass "
                            f"--train.resume=true to continue, or pick another train.run_dir")
        forward = self.model.forward_terms
        if world.distributed:  # after a resume: DDP broadcasts rank 0's model to every rank
            forward = torch.nn.parallel.DistributedDataParallel(
                _TermsForward(self.model), forward_sync_buffers=False,
                gradient_as_bucket_view=True,
                device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.forward = torch.compile(forward) if s.train.compile else forward
        self.knn = None
        if s.logging.knn_train_path:
            val = s.logging.knn_val_path or s.logging.knn_train_path
            self.knn = [make_eval_loader(path, s.data.batch_size, s.data.resolution,
                                         s.data.num_workers, s.data.os_cache)
                        for path in (s.logging.knn_train_path, val)]

    def _region_options(self, variant):
        """Which pairs have a tracked region, and the loader's region-crop settings."""
        from loaders.pair_loader import check_range, tracked_pairs
        s = self.s
        # checked here too so that the message names the config keys
        context = check_range('augment.region_context_min/max', (
            s.augment.region_context_min, s.augment.region_context_max), 0.0, math.inf)
        scale = check_range('augment.region_scale_min/max', (
            s.augment.region_scale_min, s.augment.region_scale_max), 0.0, 1.0, low_open=True)
        region_valid = tracked_pairs(s.data.path)
        if not region_valid.any():
            raise UserError(f"{s.data.path}: no pair has a tracked region; "
                            f"train.variant={s.train.variant} needs a .beton from "
                            f"{variant.writer} (N > 0)")
        options = dict(region_context=context, region_scale=scale)
        if len(variant.terms) == 1:  # rt: untracked pairs are not loaded at all
            options['indices'] = np.flatnonzero(region_valid)
        return region_valid, options

    def _resume(self):
        run_dir = self.s.train.run_dir

        def read():
            path = latest_checkpoint(run_dir)
            if path is None:
                raise UserError(f"train.resume is set but {run_dir} has no checkpoint")
            return path, load_checkpoint(path, map_location='cpu')
        # rank 0 reads (run_dir need not be shared between machines) and sends it to all
        path, state = distributed.from_main(self.world, read)
        try:
            self.model.load_state_dict(state['model'])
            self.optimizer.load_state_dict(state['optimizer'])
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(f"checkpoint {path} does not match the config: {first}") from None
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        set_rng_state(state['rng'])
        self.start_epoch = state['next_epoch']
        if self.world.is_main:
            print(f"resuming from {path} at epoch {self.start_epoch}", file=sys.stderr)

    def prepare_views(self, views, indices, epoch):
        """uint8 (B, V, H, W, 3) -> list of V normalised float (B, 3, H, W), plus the [0, 1]
        float views (V, B, 3, H, W) for the image grid."""
        # (B, V, H, W, 3) -> (V, B, 3, H, W); the float copy frees FFCV's ring-buffer slot
        x = to_unit_float(views.to(self.device, non_blocking=True)).transpose(0, 1)
        if self.gpu_augment is not None:
            x = torch.stack(self.gpu_augment.augment_views(list(x), indices, epoch))
        normalised = [normalize(x[v], self.memory_format) for v in range(x.shape[0])]
        return normalised, x

    def save_config(self):
        with atomic_path(os.path.join(self.s.train.run_dir, 'config.yaml')) as tmp:
            with open(tmp, 'w') as handle:
                yaml.safe_dump(self.s.to_dict(), handle, sort_keys=False)

    def fit(self, stop_after=None):
        """Train to ``train.epochs``; ``stop_after`` ends the run early after that epoch count
        (what an interruption leaves behind; resume continues from there)."""
        s = self.s
        main = self.world.is_main
        if main:
            self.save_config()
        monitor = Monitor(s.train.run_dir, enabled=main)
        steps_per_epoch = len(self.loader)
        last_path = None
        end = s.train.epochs if stop_after is None else min(stop_after, s.train.epochs)
        for epoch in range(self.start_epoch, end):
            self.model.train()
            self.loader.set_epoch(epoch)
            self._run_epoch(epoch, steps_per_epoch, monitor)
            # every rank's model identical, running statistics included (no-op on one rank)
            distributed.average_batchnorm_statistics(self.model)
            done = epoch + 1
            if done % s.train.checkpoint_every == 0 or done == s.train.epochs:
                # rank 0 saves for everyone: first make sure everyone holds the same
                distributed.check_same_state(self.world, self.state_tensors(),
                                             f"after epoch {done}")
                if main:
                    last_path = save_checkpoint(
                        s.train.run_dir, epoch, self.model, self.optimizer,
                        self.scaler if self.scaler.is_enabled() else None, s.to_dict())
            if self.knn and (done % s.logging.knn_every == 0 or done == s.train.epochs):
                if main:  # the other ranks wait (within dist.timeout_s) at the barrier
                    top1, top5 = self.evaluate_knn()
                    monitor.scalars(done * steps_per_epoch,
                                    **{'knn/top1': top1, 'knn/top5': top5})
                    print(f"epoch {done}: kNN top-1 {top1:.2f} % top-5 {top5:.2f} %")
                if self.world.distributed:
                    torch.distributed.barrier()
            monitor.flush()
        monitor.close()
        return last_path

    def state_tensors(self):
        """(name, tensor) of the training state a checkpoint holds: the MoCo module (both
        encoders, queues) and the optimizer's momentum buffers."""
        yield from self.model.state_dict().items()
        for index, state in self.optimizer.state_dict()['state'].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    yield f'optimizer.{index}.{key}', value

    def _run_epoch(self, epoch, steps_per_epoch, monitor):
        s = self.s
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{s.train.epochs}",
                   disable=not (s.logging.progress and self.world.is_main), leave=False,
                   file=sys.stderr)
        window_losses, window_flags = [], []
        wait = busy = 0.0
        pairs = 0
        tick = time.perf_counter()
        batches = iter(self.loader)
        for step in range(steps_per_epoch):
            views, indices, _ = next(batches)
            got = time.perf_counter()
            wait += got - tick
            global_step = epoch * steps_per_epoch + step
            lr = learning_rate(s.optim, s.train.epochs, epoch + step / steps_per_epoch,
                               s.data.batch_size)
            for group in self.optimizer.param_groups:
                group['lr'] = lr
            normalised, raw = self.prepare_views(views, indices, epoch)
            if global_step == 0:
                monitor.pair_grid(0, raw, s.logging.image_grid)
            losses = self.train_step(normalised, self.tracked(indices))  # (total, terms...)
            window_losses.append(losses)
            window_flags.append(~torch.isfinite(losses[0]))
            pairs += views.shape[0] * self.world.size  # global pairs
            bar.update(1)
            tock = time.perf_counter()
            busy += tock - got
            tick = tock
            if (step + 1) % s.logging.log_every == 0 or step + 1 == steps_per_epoch:
                self._check_finite(window_flags, global_step + 1 - len(window_flags), epoch)
                # losses and data wait: means over ranks (one all-reduce per window)
                window = torch.cat([torch.stack(window_losses).mean(0), torch.tensor(
                    [wait / max(wait + busy, 1e-9)], device=self.device)])
                means = distributed.mean_over_ranks(window).tolist()
                mean_loss = means[0]
                stats = {'train/loss': mean_loss, 'train/lr': lr,
                         **{f'train/loss_{name}': value
                            for name, value in zip(self.term_names, means[1:-1])},
                         'train/pairs_per_s': pairs / max(wait + busy, 1e-9),
                         'train/data_wait_fraction': means[-1]}
                memory = gpu_memory_gib(self.device)
                if memory is not None:
                    stats['train/gpu_memory_gib'] = memory
                monitor.scalars(global_step + 1, **stats)
                bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.4f}",
                                pairs_s=f"{stats['train/pairs_per_s']:.0f}")
                window_losses, window_flags = [], []
                wait = busy = 0.0
                pairs = 0
        batches.close()
        bar.close()

    def tracked(self, indices):
        """(B,) bool on the device: which samples have a tracked region (None: all count)."""
        if self.region_valid is None:
            return None
        return self.region_valid[indices.to(self.device, non_blocking=True)]

    def train_step(self, views, tracked=None):
        """One optimizer step on the normalised views (in view order) of one batch.

        ``tracked``: (B,) bool, samples whose region term counts (None: all). Returns the
        detached (total, term 1, ...) losses as one tensor, without a host sync.
        """
        pairs = [(views[q], views[k]) for _, q, k in self.variant.terms]
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            per_sample, _, keys = self.forward(pairs)
        terms = []
        for name, losses in zip(self.term_names, per_sample):
            if name == 'region' and tracked is not None:
                # untracked pairs carry whole-frame "regions": they stay out of this term
                weight = tracked.to(losses.dtype)
                # DDP averages the ranks' gradients, so each rank divides by the mean tracked
                # count over ranks: the average is then the global masked mean (a global
                # count of 0 leaves 0 / (1 / W))
                count = distributed.mean_over_ranks(weight.sum())
                terms.append((losses * weight).sum() / count.clamp(min=1 / self.world.size))
            else:
                terms.append(losses.mean())
        loss = sum(w * t for w, t in zip(self.term_weights, terms))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.enqueue_terms(keys)
        return torch.stack([loss] + terms).detach()

    def _check_finite(self, flags, first_step, epoch):
        # any rank's non-finite loss stops every rank at the same step
        bad = distributed.mean_over_ranks(torch.stack(flags).float()) > 0
        if bad.any().item():
            step = first_step + int(bad.float().argmax().item())
            raise UserError(f"non-finite loss at global step {step} (epoch {epoch + 1}); "
                            f"stopped without saving. Lower optim.lr or use "
                            f"train.precision=fp32, then resume from the last checkpoint")

    @torch.no_grad()
    def evaluate_knn(self):
        self.model.eval()
        encoder = self.model.encoder_q
        bank = extract_features(encoder.features, self.knn[0], self.device,
                                self.s.train.channels_last, self.amp_dtype)
        queries = extract_features(encoder.features, self.knn[1], self.device,
                                   self.s.train.channels_last, self.amp_dtype)
        self.model.train()
        return weighted_knn(*bank, *queries, k=self.s.logging.knn_k,
                            temperature=self.s.logging.knn_temperature)
