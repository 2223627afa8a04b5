"""The parts of a training run (process group, augment, loader, model, optimizer, resumed
state, kNN monitor loaders, invariance monitor), built from its settings in named steps;
``Trainer`` runs them."""
import os
import random
import sys
import textwrap

import numpy as np
import torch
import yaml

from fastssl_common.atomic import atomic_path, ensure_writable_dir
from fastssl_common.beton_file import tables_digest
from fastssl_common.errors import UserError
from loaders.batch_memory import check_process_cache
from loaders.integrity import verify
from loaders.pair_loader import MultiViewLoader, open_beton, tracked_pairs
from loaders.photometric_params import make_strengths
from loaders.work_sharing import check_threads

from . import distributed
from .checkpoint import check_run_dir_free
from .config import weight_name
from .device import resolve_device, resolve_precision
from .evaluation import checked_eval_loaders
from .gpu_augment import GPUPhotometric
from .invariance_monitor import InvarianceMonitor, read_sets, render_default_sets
from .knn import usable_neighbours
from .moco import MoCo
from .monitor import Monitor
from .rank_agreement import check_same_config, from_main
from .resume import start_position
from .schedule import learning_rate
from .split_batchnorm import check_bn_groups, resolve_splits, small_groups_warning
from .variants import VARIANTS


def upscaling_note(reader, field, path, resolution):
    """The note for a dataset whose images (their median shorter side, in ``field``) are
    smaller than the views made of them, else None: every view is then upscaled, at the cost
    of a larger resolution and no detail gained (a 96 px set at the default 224, say)."""
    stored = reader.metadata[f'f{list(reader.handlers).index(field)}']
    if not len(stored):
        return None
    side = int(np.median(np.minimum(stored['height'], stored['width'])))
    if side >= resolution:
        return None
    return (f'the images of {path} are smaller than data.resolution={resolution} px (median '
            f'shorter side {side} px): every view is upscaled; a data.resolution near {side} '
            f'trains faster on the same detail')


class _TermsForward(torch.nn.Module):
    """What DDP wraps: DDP runs ``forward``; MoCo's multi-term entry point is
    ``forward_terms``."""

    def __init__(self, moco):
        super().__init__()
        self.moco = moco

    def forward(self, pairs):
        return self.moco.forward_terms(pairs)


def clamp_queue(queue_size, num_samples, batch_size, keys_per_sample=1):
    """Largest queue that one epoch fills without a sample meeting its own previous key in
    the same pass: K <= (N - B) * keys per sample (rounded down to a step's keys)."""
    step_keys = batch_size * keys_per_sample
    # int(): FFCV counts samples in unsigned integers, where N - B below 0 wraps around
    limit = (int(num_samples) - batch_size) // batch_size * step_keys
    if limit < step_keys:
        # fewer than two steps' samples: no queue avoids them, as even the smallest, one step's
        # keys (config.py), holds keys of samples the next step draws again
        clamped = f' (moco.queue_size={queue_size} is clamped to it)' \
            if queue_size > step_keys else ''
        # BatchNorm trains on groups of 2 or more: a batch of 2 needs 4 samples
        remedy = f'data.batch_size <= {int(num_samples) // 2}' if num_samples >= 4 else \
            'more samples'
        print(f'warning: {num_samples} samples are fewer than two steps of batch {batch_size}: '
              f"even the smallest queue, one step's {step_keys} keys{clamped}, holds keys of "
              f'samples the next step draws again, so samples meet their own earlier keys as '
              f'negatives; use {remedy}', file=sys.stderr)
        return step_keys
    if queue_size > limit:
        print(f'warning: moco.queue_size={queue_size} exceeds what {num_samples} samples can '
              f'fill with batch {batch_size}; using {limit}', file=sys.stderr)
        return limit
    return queue_size


class TrainingParts:
    """Built in named steps (as ffcv-imagenet's trainer): each ``create_*`` makes one part
    from the settings, in the order the parts depend on each other."""

    def __init__(self, settings):
        self.s = s = settings
        self.world = self.create_world()
        # a configured invariance set folder is checked first, before the slower parts
        every, sets = s.logging.invariance_every, s.logging.invariance_sets
        self.invariance = self.create_invariance_monitor(lambda: sets) if every and sets \
            else None
        self.device = self.world.device
        self.amp_dtype = resolve_precision(s.train.precision, self.device)
        self.placement = self.resolve_placement()
        self.rank_batch = self.split_batch()
        self.strengths, self.gpu_augment = self.create_augment()
        torch.manual_seed(s.train.seed)
        # nothing here draws from them, but a checkpoint holds their states: seeded, they are
        # the same in every process and every run of a seed, as the torch state is
        np.random.seed(s.train.seed)
        random.seed(s.train.seed)
        self.variant = VARIANTS[s.train.variant]
        self.loader, self.region_valid = self.create_loader()
        self.data_digest = from_main(self.world, lambda: tables_digest(s.data.path))
        self.term_names = [name for name, _, _ in self.variant.terms]
        self.term_weights = [getattr(s.moco, weight_name(name)) for name in self.term_names]
        self.memory_format = (torch.channels_last if s.train.channels_last
                              else torch.contiguous_format)
        self.model = self.create_model()
        self.optimizer, self.scaler = self.create_optimizer()
        from_main(self.world, lambda: check_run_dir_free(s.train.run_dir))
        self.start_epoch, self.start_step, resuming = start_position(
            self.world, s, self.model, self.optimizer, self.scaler, len(self.loader),
            self.data_digest)
        self.forward = self.create_forward()  # after a resume: DDP broadcasts rank 0's model
        self.knn = self.create_knn_loaders()
        # the run folder last, once every check has passed: a refusal leaves no empty folder
        from_main(self.world, lambda: ensure_writable_dir(s.train.run_dir))
        if resuming and self.world.is_main:
            print(resuming, file=sys.stderr)
        if every and not sets:  # the default sets are rendered into the run folder
            self.invariance = self.create_invariance_monitor(
                lambda: render_default_sets(s.train.run_dir))

    def create_world(self):
        """This process's place among the torchrun ranks (joins the process group)."""
        world = distributed.setup(resolve_device(self.s.train.device), self.s.dist.timeout_s)
        check_same_config(world, self.s.to_dict())
        return world

    def resolve_placement(self):
        """Where the photometric augment runs: 'auto' is the GPU when there is one."""
        placement = self.s.augment.placement
        if placement == 'auto':
            return 'gpu' if self.device.type == 'cuda' else 'cpu'
        return placement

    @property
    def bn_splits(self):
        """One device: split-BN groups; several ranks: 1, shuffle-BN across them replaces
        it (fastssl.moco)."""
        if self.world.distributed:
            return 1
        return resolve_splits(self.s.moco.bn_splits, self.s.data.batch_size)

    def split_batch(self):
        """-> pairs per step on this rank; UserError if the global batch does not split."""
        s, world = self.s, self.world
        if s.data.batch_size % self.bn_splits:
            raise UserError(f'data.batch_size={s.data.batch_size} must be divisible by '
                            f'moco.bn_splits={s.moco.bn_splits}')
        if s.data.batch_size % world.size:
            raise UserError(f'data.batch_size={s.data.batch_size} (the global batch) must be '
                            f'divisible by the {world.size} torchrun processes')
        if world.distributed and s.data.order == 'quasi_random':
            raise UserError('data.order=quasi_random does not support several processes '
                            '(FFCV): use random')
        check_bn_groups(s.data.batch_size, s.moco.bn_splits, world.size, self.terms)
        return s.data.batch_size // world.size

    @property
    def terms(self):
        """Loss terms a step puts through the encoders as one batch."""
        return len(VARIANTS[self.s.train.variant].terms)

    def warn_small_bn_groups(self):
        """Warn (rank 0) when the BatchNorm groups that run hold fewer than ``MIN_GROUP``."""
        warning = small_groups_warning(self.s.data.batch_size, self.s.moco.bn_splits,
                                       self.world.size, self.terms)
        if warning and self.world.is_main:
            print(f'warning: {warning}', file=sys.stderr)

    def create_augment(self):
        """-> (photometric strengths, the batched augment when it runs on the device)."""
        kwargs = {name: getattr(self.s.augment, name) for name in (
            'brightness', 'contrast', 'saturation', 'hue', 'p_jitter', 'p_gray', 'p_blur',
            'sigma_min', 'sigma_max')}
        gpu = GPUPhotometric(self.s.train.seed, **kwargs) if self.placement == 'gpu' else None
        return make_strengths(**kwargs), gpu

    def create_loader(self):
        """-> (this rank's pair loader, (N,) bool on the device of the samples whose region
        term counts, or None when all count)."""
        s, variant = self.s, self.variant
        reader = open_beton(s.data.path, variant.required,
                            f'; train.variant={s.train.variant} needs a .beton from '
                            f'{variant.writer}')
        note = upscaling_note(reader, variant.view_fields[0][0], s.data.path, s.data.resolution)
        if note and self.world.is_main:
            print(f'note: {note}', file=sys.stderr)
        if s.data.verify:  # rank 0's copy; the other machines': python -m loaders.verify
            from_main(self.world, lambda: verify(s.data.path, progress=s.logging.progress))
        region_valid, region_options = None, {}
        if variant.uses_regions:
            region_valid, region_options = self._region_options()
        workers = check_threads(s.data.num_workers, 'data.num_workers')
        if s.data.num_workers == 0 and self.world.distributed:  # shared by the machine's ranks
            workers = max(1, workers // self.world.local_size)
        loader = MultiViewLoader(
            s.data.path, self.rank_batch, s.data.resolution, variant.view_fields,
            num_workers=workers, seed=s.train.seed, order=s.data.order,
            scale=(s.augment.crop_scale_min, s.augment.crop_scale_max),
            ratio=(s.augment.crop_ratio_min, s.augment.crop_ratio_max),
            flip_prob=s.augment.flip_prob,
            cpu_photometric=self.strengths if self.placement == 'cpu' else None,
            os_cache=s.data.os_cache, distributed=self.world.distributed,
            # under torchrun a process's batch is a share of it (refused below)
            batch_key='batch size' if self.world.distributed else 'data.batch_size',
            **region_options)
        if len(loader) == 0:    # under torchrun each process reads its share of the samples
            raise UserError(f'data.batch_size {s.data.batch_size} is larger than '
                            f'{s.data.path} gives the {self.world.size} processes '
                            f'({loader.num_samples} samples: {self.rank_batch} a process a step, '
                            f'{loader.num_samples // self.world.size} each)')
        check_process_cache(loader.loader, s.data.path, s.data.order,
                            ('data.os_cache', 'data.order'), self.world.local_size)
        # rt loads tracked pairs only; fti_rt masks the others out of its region term
        if region_valid is None or 'indices' in region_options:
            return loader, None
        return loader, torch.from_numpy(region_valid).to(self.device)

    def _region_options(self):
        """Which pairs have a tracked region, and the loader's region-crop settings."""
        s = self.s
        region_valid = tracked_pairs(s.data.path)
        if not region_valid.any():
            raise UserError(f'{s.data.path}: no pair has a tracked region; '
                            f'train.variant={s.train.variant} needs a .beton from '
                            f'{self.variant.writer} (N > 0)')
        options = dict(
            region_context=(s.augment.region_context_min, s.augment.region_context_max),
            region_scale=(s.augment.region_scale_min, s.augment.region_scale_max))
        if self.terms == 1:  # rt: untracked pairs are not loaded at all
            options['indices'] = np.flatnonzero(region_valid)
            untracked = len(region_valid) - len(options['indices'])
            if untracked and self.world.is_main:
                print(f'note: train.variant={s.train.variant} trains on the '
                      f"{len(options['indices'])} pairs of {s.data.path} with a tracked "
                      f'region; the other {untracked} are not loaded', flush=True)
        return region_valid, options

    def create_model(self):
        """MoCo on the device, its queue no larger than one epoch fills."""
        s = self.s
        n_terms = self.terms
        term_queues = tuple(range(n_terms)) if s.moco.separate_queues else (0,) * n_terms
        queue = clamp_queue(s.moco.queue_size, self.loader.num_samples, s.data.batch_size,
                            keys_per_sample=n_terms - max(term_queues))
        model = MoCo(s.model.arch, s.model.proj_hidden, s.model.proj_dim, queue,
                     s.moco.momentum, s.moco.temperature, self.bn_splits, term_queues)
        return model.to(self.device, memory_format=self.memory_format)

    def create_optimizer(self):
        """-> (SGD over the query encoder, GradScaler: enabled for fp16 only)."""
        s = self.s
        optimizer = torch.optim.SGD(
            self.model.encoder_q.parameters(),
            lr=learning_rate(s.optim, s.train.epochs, 0.0, s.data.batch_size),
            momentum=s.optim.momentum, weight_decay=s.optim.weight_decay)
        scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        return optimizer, scaler

    def create_forward(self):
        """MoCo's multi-term forward: DDP-wrapped under torchrun, compiled if asked."""
        forward = self.model.forward_terms
        if self.world.distributed:
            forward = torch.nn.parallel.DistributedDataParallel(
                _TermsForward(self.model), forward_sync_buffers=False,
                gradient_as_bucket_view=True,
                device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        return torch.compile(forward) if self.s.train.compile else forward

    def create_knn_loaders(self):
        """-> [memory bank loader, query loader] of the kNN monitor, or None when it is off."""
        s = self.s
        if not s.logging.knn_train_path:
            return None
        train, val = s.logging.knn_train_path, s.logging.knn_val_path
        loaders = checked_eval_loaders(train, val, ('logging.knn_train_path',
                                                    'logging.knn_val_path'),
                                       s.data.batch_size, s.data.resolution,
                                       s.data.num_workers, s.data.os_cache)
        bank, queries = loaders[train], loaders[val or train]
        # the vote takes what the bank has (weighted_knn): the logged knn/top1 is then of
        # fewer neighbours than knn_k, as eval.py knn's result says with k and k_requested
        usable = usable_neighbours(int(bank.reader.num_samples), queries is bank)
        if s.logging.knn_k > usable and self.world.is_main:
            print(f'note: logging.knn_k={s.logging.knn_k} is more than the {usable} neighbours '
                  f'{train} gives a kNN query{" (all but itself)" if queries is bank else ""}: '
                  f'the kNN monitor votes with all {usable}', flush=True)
        return [bank, queries]

    def create_invariance_monitor(self, root):
        """-> the invariance monitor of the sets in the folder ``root()`` on rank 0 (None on
        the other ranks, which get rank 0's refusal of the folder)."""
        s = self.s
        monitor = []
        from_main(self.world, lambda: monitor.append(InvarianceMonitor(
            read_sets(root(), s.logging.invariance_kind), s.data.batch_size,
            s.data.num_workers, s.train.channels_last)))
        return monitor[0] if monitor else None

    def create_monitor(self):
        """TensorBoard on rank 0 (which also writes the run's config, to config.yaml and to
        the Text tab); silent elsewhere."""
        config = yaml.safe_dump(self.s.to_dict(), sort_keys=False)
        if self.world.is_main:
            with atomic_path(os.path.join(self.s.train.run_dir, 'config.yaml')) as tmp:
                with open(tmp, 'w') as handle:
                    handle.write(config)
        # a resumed run logs from the step after its checkpoint's; a new one from step 0
        resumed_at = self.start_epoch * len(self.loader) + self.start_step
        monitor = Monitor(self.s.train.run_dir, enabled=self.world.is_main,
                          purge_step=resumed_at + 1 if resumed_at else 0)
        monitor.text('config', textwrap.indent(config, '    '), resumed_at)  # a code block
        return monitor
