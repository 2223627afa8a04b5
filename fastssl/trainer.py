"""The MoCo v2 training loop: FFCV pair loader -> augment -> channels-last AMP step -> logs.

Reads a resolved config (``fastssl.config.Settings``); ``train.py`` is a thin CLI over it.
Order of work per step, and why:
1. views arrive as uint8 (B, V, H, W, 3) from the decode-once loader (crops and flips done);
2. they are copied to the device and, with ``augment.placement=gpu``, photometrically
   augmented there in one batched pass (CPU threads stay free for decoding); the parameters
   come from the same counter-based draw as the CPU op, keyed on (seed, epoch, index);
3. MoCo forward/backward under autocast (bf16 on GPUs that support it), channels_last;
4. keys are enqueued after the optimizer step;
5. non-finite losses are gathered on the device and checked every ``log_every`` steps (no
   per-step host sync); training stops with the exact step named.
"""
import math
import os
import sys
import time

import torch
import yaml
from tqdm import tqdm

from fastssl_common.atomic import ensure_writable_dir, atomic_path
from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import MultiViewLoader, open_beton
from loaders.photometric import make_strengths

from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from .gpu_augment import GPUPhotometric
from .knn import extract_features, weighted_knn
from .moco import MoCo
from .monitor import Monitor, gpu_memory_gib
from .normalize import normalize, to_unit_float
from .variants import VARIANTS

N_VIEWS = 2


def resolve_device(name):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"train.device '{name}' is not a device (auto/cpu/cuda/cuda:N)") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError(f"train.device is '{name}' but CUDA is not available")
    return device


def resolve_precision(precision, device):
    """-> autocast dtype or None (fp32)."""
    if precision == 'auto':
        if device.type == 'cuda' and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == 'fp16' and device.type != 'cuda':
        raise UserError("train.precision=fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]


def learning_rate(optim, epochs, epoch_progress, batch_size):
    """lr at fractional epoch: linear scaling by batch/256, linear warmup, cosine decay."""
    base = optim.lr * batch_size / 256
    if epoch_progress < optim.warmup_epochs:
        return base * epoch_progress / optim.warmup_epochs
    span = max(epochs - optim.warmup_epochs, 1e-8)
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch_progress - optim.warmup_epochs) / span))


def clamp_queue(queue_size, num_samples, batch_size):
    """Largest queue that one epoch fills without a sample meeting its own previous key in
    the same pass: K <= N - B (rounded down to a multiple of B)."""
    limit = max(batch_size, (num_samples - batch_size) // batch_size * batch_size)
    if queue_size > limit:
        print(f"warning: moco.queue_size={queue_size} exceeds what {num_samples} samples can "
              f"fill with batch {batch_size}; using {limit}", file=sys.stderr)
        return limit
    return queue_size


class Trainer:
    def __init__(self, settings):
        self.s = s = settings
        self.device = resolve_device(s.train.device)
        self.amp_dtype = resolve_precision(s.train.precision, self.device)
        placement = s.augment.placement
        if placement == 'auto':
            placement = 'gpu' if self.device.type == 'cuda' else 'cpu'
        self.placement = placement
        if s.data.batch_size % max(s.moco.bn_splits, 1):
            raise UserError(f"data.batch_size={s.data.batch_size} must be divisible by "
                            f"moco.bn_splits={s.moco.bn_splits}")
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

        variant = VARIANTS[s.train.variant]
        hint = f"; train.variant={s.train.variant} needs a .beton from {variant.writer}"
        open_beton(s.data.path, variant.required, hint)
        self.loader = MultiViewLoader(
            s.data.path, s.data.batch_size, s.data.resolution, variant.view_fields,
            num_workers=s.data.num_workers, seed=s.train.seed, order=s.data.order,
            scale=(s.augment.crop_scale_min, s.augment.crop_scale_max),
            ratio=(s.augment.crop_ratio_min, s.augment.crop_ratio_max),
            flip_prob=s.augment.flip_prob,
            cpu_photometric=self.strengths if placement == 'cpu' else None,
            os_cache=s.data.os_cache)
        ensure_writable_dir(s.train.run_dir)  # after the data checks: no empty run folders
        queue = clamp_queue(s.moco.queue_size, self.loader.num_samples, s.data.batch_size)
        self.model = MoCo(s.model.arch, s.model.proj_hidden, s.model.proj_dim, queue,
                          s.moco.momentum, s.moco.temperature, s.moco.bn_splits)
        fmt = torch.channels_last if s.train.channels_last else torch.contiguous_format
        self.memory_format = fmt
        self.model.to(self.device, memory_format=fmt)
        self.forward = torch.compile(self.model) if s.train.compile else self.model
        self.optimizer = torch.optim.SGD(self.model.encoder_q.parameters(),
                                         lr=learning_rate(s.optim, s.train.epochs, 0.0,
                                                          s.data.batch_size),
                                         momentum=s.optim.momentum,
                                         weight_decay=s.optim.weight_decay)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.start_epoch = 0
        if s.train.resume:
            self._resume()
        elif latest_checkpoint(s.train.run_dir):
            raise UserError(f"{s.train.run_dir} already holds checkpoints: pass "
                            f"--train.resume=true to continue, or pick another train.run_dir")
        self.knn = None
        if s.logging.knn_train_path:
            val = s.logging.knn_val_path or s.logging.knn_train_path
            self.knn = [make_eval_loader(path, s.data.batch_size, s.data.resolution,
                                         s.data.num_workers, s.data.os_cache)
                        for path in (s.logging.knn_train_path, val)]

    def _resume(self):
        path = latest_checkpoint(self.s.train.run_dir)
        if path is None:
            raise UserError(f"train.resume is set but {self.s.train.run_dir} has no checkpoint")
        state = load_checkpoint(path, map_location=self.device)
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
        print(f"resuming from {path} at epoch {self.start_epoch}", file=sys.stderr)

    def prepare_views(self, views, indices, epoch):
        """uint8 (B, V, H, W, 3) -> list of V normalised float (B, 3, H, W), plus [0,1] copy."""
        # (B, V, H, W, 3) -> (V, B, 3, H, W); the float copy frees FFCV's ring-buffer slot
        x = to_unit_float(views.to(self.device, non_blocking=True)).transpose(0, 1)
        if self.gpu_augment is not None:
            x = torch.stack(self.gpu_augment.augment_views(list(x), indices, epoch))
        normalised = [normalize(x[v], self.memory_format) for v in range(N_VIEWS)]
        return normalised, x

    def save_config(self):
        with atomic_path(os.path.join(self.s.train.run_dir, 'config.yaml')) as tmp:
            with open(tmp, 'w') as handle:
                yaml.safe_dump(self.s.to_dict(), handle, sort_keys=False)

    def fit(self, stop_after=None):
        """Train to ``train.epochs``; ``stop_after`` ends the run early after that epoch count
        (what an interruption leaves behind; resume continues from there)."""
        s = self.s
        self.save_config()
        monitor = Monitor(s.train.run_dir)
        steps_per_epoch = len(self.loader)
        last_path = None
        end = s.train.epochs if stop_after is None else min(stop_after, s.train.epochs)
        for epoch in range(self.start_epoch, end):
            self.model.train()
            self.loader.set_epoch(epoch)
            self._run_epoch(epoch, steps_per_epoch, monitor)
            done = epoch + 1
            if done % s.train.checkpoint_every == 0 or done == s.train.epochs:
                last_path = save_checkpoint(s.train.run_dir, epoch, self.model, self.optimizer,
                                            self.scaler if self.scaler.is_enabled() else None,
                                            s.to_dict())
            if self.knn and (done % s.logging.knn_every == 0 or done == s.train.epochs):
                top1, top5 = self.evaluate_knn()
                monitor.scalars(done * steps_per_epoch, **{'knn/top1': top1, 'knn/top5': top5})
                print(f"epoch {done}: kNN top-1 {top1:.2f} % top-5 {top5:.2f} %")
            monitor.flush()
        monitor.close()
        return last_path

    def _run_epoch(self, epoch, steps_per_epoch, monitor):
        s = self.s
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{s.train.epochs}",
                   disable=not s.logging.progress, leave=False, file=sys.stderr)
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
            (im_q, im_k), raw = self.prepare_views(views, indices, epoch)
            if global_step == 0:
                monitor.pair_grid(0, raw, s.logging.image_grid)
            loss = self.train_step(im_q, im_k)
            window_losses.append(loss)
            window_flags.append(~torch.isfinite(loss))
            pairs += views.shape[0]
            bar.update(1)
            tock = time.perf_counter()
            busy += tock - got
            tick = tock
            if (step + 1) % s.logging.log_every == 0 or step + 1 == steps_per_epoch:
                self._check_finite(window_flags, global_step + 1 - len(window_flags), epoch)
                mean_loss = torch.stack(window_losses).mean().item()
                stats = {'train/loss': mean_loss, 'train/lr': lr,
                         'train/pairs_per_s': pairs / max(wait + busy, 1e-9),
                         'train/data_wait_fraction': wait / max(wait + busy, 1e-9)}
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

    def train_step(self, im_q, im_k):
        """One optimizer step on normalised views; returns the detached loss (no host sync)."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            loss, _, keys = self.forward(im_q, im_k)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.enqueue(keys)
        return loss.detach()

    def _check_finite(self, flags, first_step, epoch):
        bad = torch.stack(flags)
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
