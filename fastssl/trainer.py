"""The MoCo v2 training loop: FFCV pair loader -> augment -> channels-last AMP step -> logs.

Reads resolved settings (``fastssl.config.load_settings``); ``train.py`` is a thin CLI over
it, and ``fastssl/training_parts.py`` builds the run's parts from them.
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
   per-step host sync); training stops with the exact step named;
6. a SIGTERM or SIGINT received meanwhile stops the run here, after the step, with a
   checkpoint (``fastssl.preemption``); resuming skips the batches of the epoch already done.

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
checkpoints, which hold global state only and resume under any number of ranks. The monitors
(kNN, invariance: ``fastssl.invariance_monitor``) run between epochs, never inside a step, on
rank 0 with the query backbone in eval mode, while the other ranks wait at a barrier.
"""
import contextlib
import sys
import time

import torch

from fastssl_common.errors import UserError
from loaders.decode_failures import failure_warning

from . import distributed
from .checkpoint import hold_run_dir, latest_checkpoint, save_checkpoint, state_tensors
from .epoch_progress import epoch_progress
from .evaluation import warn_decode_failures
from .knn import extract_features, weighted_knn
from .monitor import Window
from .normalize import normalize, to_unit_float
from .preemption import Preempted, StopSignals
from .rank_agreement import check_same_state, from_main
from .schedule import learning_rate
from .training_parts import TrainingParts


class Trainer(TrainingParts):
    """A training run: ``fit`` runs the epochs; ``train_step`` is one optimizer step."""

    def prepare_views(self, views, indices, epoch):
        """uint8 (B, V, H, W, 3) -> list of V normalised float (B, 3, H, W), plus the [0, 1]
        float views (V, B, 3, H, W) for the image grid."""
        # (B, V, H, W, 3) -> (V, B, 3, H, W); the float copy frees FFCV's ring-buffer slot
        x = to_unit_float(views.to(self.device, non_blocking=True)).transpose(0, 1)
        if self.gpu_augment is not None:
            x = torch.stack(self.gpu_augment.augment_views(list(x), indices, epoch))
        normalised = [normalize(x[v], self.memory_format) for v in range(x.shape[0])]
        return normalised, x

    def fit(self, stop_after=None):
        """Train to ``train.epochs``; ``stop_after`` ends the run early after that epoch count
        (what an interruption leaves behind; resume continues from there). SIGTERM or SIGINT
        stops it at the next step boundary with a checkpoint: :class:`Preempted`. Another
        run into the same ``train.run_dir`` meanwhile is refused."""
        with contextlib.ExitStack() as held:
            # rank 0 holds the folder it writes; every rank gets its refusal
            from_main(self.world,
                      lambda: held.enter_context(hold_run_dir(self.s.train.run_dir)))
            return self._train(stop_after)

    def _train(self, stop_after):
        s = self.s
        if self.start_epoch == s.train.epochs:   # a finished run, resumed: nothing is written
            return None
        self.warn_small_bn_groups()
        self._decodes_failed = self.loader.decode_failures.count
        # the untrained network, the reference the curves start from, is measured before the
        # run's config and events are written: a monitor set that cannot be read leaves none
        untrained = {}
        if (self.start_epoch, self.start_step) == (0, 0):
            if self.knn:
                untrained.update(self._monitor_knn('before training'))
            if s.logging.invariance_every:
                untrained.update(self._monitor_invariance('before training'))
        monitor = self.create_monitor()
        monitor.scalars(0, **untrained)
        steps_per_epoch = len(self.loader)
        last_path = None
        end = s.train.epochs if stop_after is None else min(stop_after, s.train.epochs)
        # the log is closed under StopSignals too: a signal while it closes after the last
        # epoch lets the run finish, and one after a stop is the second signal
        with StopSignals(self.world) as stop:
            try:
                for epoch in range(self.start_epoch, end):
                    first = self.start_step if epoch == self.start_epoch else 0
                    done, signum = self._run_epoch(epoch, first, steps_per_epoch, monitor, stop)
                    if done < steps_per_epoch:
                        distributed.average_batchnorm_statistics(self.model)
                        raise Preempted(signum, self.save(epoch, done),
                                        f'after step {done} of {steps_per_epoch} of epoch '
                                        f'{epoch + 1}')
                    path, signum = self._end_epoch(epoch, steps_per_epoch, monitor, stop, signum,
                                                   last=epoch + 1 == end)
                    last_path = path or last_path
                    if signum:
                        raise Preempted(signum, last_path, f'after epoch {epoch + 1}')
            finally:
                monitor.close()
        return last_path

    def _end_epoch(self, epoch, steps_per_epoch, monitor, stop, signum, last):
        """Average BN statistics over ranks, save when due or stopping (``signum``: the signal
        every rank agreed to stop on after the epoch's last step), run the kNN and invariance
        monitors when due. Returns (the checkpoint saved: None when none was, and on ranks
        other than 0; the signal to stop on, 0 to go on). A signal, one during the save or a
        monitor too, skips the monitors left (a scheduler's grace period is short) and stops
        the run here, saved; at the ``last`` epoch it changes nothing: the run finishes."""
        s = self.s
        # every rank's model identical, running statistics included (no-op on one rank)
        distributed.average_batchnorm_statistics(self.model)
        done = epoch + 1
        signum = 0 if last else signum

        def stopping():  # under torchrun a collective, called at the same points by every rank
            return 0 if last else stop.agreed()
        saved = signum or done % s.train.checkpoint_every == 0 or done == s.train.epochs
        path = self.save(epoch) if saved else None

        def due(every):  # every N epochs and at the last; 0 = off
            return every and (done % every == 0 or done == s.train.epochs)
        for measure, wanted in ((self._monitor_knn, self.knn and due(s.logging.knn_every)),
                                (self._monitor_invariance, due(s.logging.invariance_every))):
            signum = signum or stopping()
            if wanted and not signum:
                monitor.scalars(done * steps_per_epoch, **measure(f'epoch {done}'))
        signum = signum or stopping()
        if signum and not saved:  # it came during a monitor of an epoch not due a save
            path = self.save(epoch)
        monitor.flush()
        return path, signum

    def save(self, epoch, step=None):
        """Rank 0 saves for everyone (after ``step`` steps of ``epoch``, or at its end), once
        every rank is known to hold the same state, while the others wait; returns the
        checkpoint's path (None on the other ranks)."""
        where = f'after epoch {epoch + 1}' if step is None else \
            f'after step {step} of epoch {epoch + 1}'
        check_same_state(self.world, state_tensors(self.model, self.optimizer), where)
        path = None
        if self.world.is_main:
            path = save_checkpoint(self.s.train.run_dir, epoch, self.model, self.optimizer,
                                   self.scaler if self.scaler.is_enabled() else None,
                                   self.s.to_dict(), step, len(self.loader), self.data_digest,
                                   keep=self.s.train.keep_checkpoints)
        if self.world.distributed:
            # the others wait for the write: stopping, a rank that exited at once had torchrun
            # stop rank 0 in the middle of it (a second signal: no checkpoint)
            torch.distributed.barrier()
        return path

    def _monitor_knn(self, when):
        """The kNN monitor's scalars on rank 0 ({} on the others), printed there."""
        scalars = {}
        if self.world.is_main:  # the other ranks wait (within dist.timeout_s) at the barrier
            s = self.s.logging
            files = dict(zip((s.knn_train_path, s.knn_val_path or s.knn_train_path), self.knn))
            before = {path: loader.decode_failures.count for path, loader in files.items()}
            top1, top5 = self.evaluate_knn()
            scalars = {'knn/top1': top1, **({} if top5 is None else {'knn/top5': top5})}
            top5_shown = '' if top5 is None else f' top-5 {top5:.2f} %'
            print(f'{when}: kNN top-1 {top1:.2f} %{top5_shown}', flush=True)
            # rank 0 alone reads the whole files: no rank prefix, unlike the training shards
            warn_decode_failures(files, before, f' in the kNN monitor ({when})')
        if self.world.distributed:
            torch.distributed.barrier()
        return scalars

    def _monitor_invariance(self, when):
        """The invariance monitor's scalars on rank 0 ({} on the others), printed there."""
        scalars = {}
        if self.world.is_main:  # as the kNN monitor: the other ranks wait at the barrier
            scalars = self.invariance.measure(self.model.encoder_q, self.device)
            print(f'{when}: {self.invariance.summary(scalars)}', flush=True)
        if self.world.distributed:
            torch.distributed.barrier()
        return scalars

    def _run_epoch(self, epoch, first, steps_per_epoch, monitor, stop):
        """Steps ``first`` .. of ``epoch``; returns (steps done, signal): all steps and 0, or
        fewer and the signal every rank agreed to stop on."""
        s = self.s
        self.model.train()
        self.loader.set_epoch(epoch)
        bar = epoch_progress(steps_per_epoch, f'epoch {epoch + 1}/{s.train.epochs}',
                             s.logging.progress and self.world.is_main, first)
        window = Window()
        batches = iter(self.loader)
        # a resumed epoch: order and draws are keyed on (seed, epoch, index), so skipping the
        # batches already trained on leaves the rest exactly as the uninterrupted run's
        for _ in range(first):
            next(batches)
        step = first
        while step < steps_per_epoch:
            tick = time.perf_counter()
            views, indices, _ = next(batches)
            got = time.perf_counter()
            window.wait += got - tick
            global_step = epoch * steps_per_epoch + step
            lr = learning_rate(s.optim, s.train.epochs, epoch + step / steps_per_epoch,
                               s.data.batch_size)
            for group in self.optimizer.param_groups:
                group['lr'] = lr
            normalised, raw = self.prepare_views(views, indices, epoch)
            if global_step == 0:
                monitor.pair_grid(0, raw, s.logging.image_grid)
            window.add(self.train_step(normalised, self.tracked(indices)),  # (total, terms...)
                       views.shape[0] * self.world.size)  # global pairs
            step += 1
            signum = stop.agreed()
            log_now = step % s.logging.log_every == 0 or step == steps_per_epoch or signum
            if log_now:
                # the log reads the losses: wait for the device here, so that the steps'
                # device time counts as busy and not as the next batch's data wait
                window.settle()
            window.busy += time.perf_counter() - got
            if log_now:
                self._log_window(window, global_step + 1, epoch, lr, monitor, bar)
                window = Window()
            bar.update(1)
            if signum:
                break
        batches.close()
        bar.close()
        self._warn_decode_failures(epoch)
        return step, signum

    def _warn_decode_failures(self, epoch):
        """One line on standard error when images of ``epoch`` did not decode (the loader
        rendered them black: ``loaders.decode_failures``), from the rank that loaded them."""
        failures = self.loader.decode_failures
        new = failures.count - self._decodes_failed
        self._decodes_failed = failures.count
        if new:
            rank = f'rank {self.world.rank}: ' if self.world.distributed else ''
            path = self.s.data.path
            print(f'warning: {rank}' + failure_warning(
                path, new, failures, f' in epoch {epoch + 1} and were trained as black views'),
                file=sys.stderr, flush=True)

    def _log_window(self, window, step, epoch, lr, monitor, bar):
        """Stop on a non-finite loss of the window, else log it."""
        self._check_finite(window.flags, step - len(window.flags), epoch)
        stats = window.stats(lr, self.term_names, self.device)
        monitor.scalars(step, **stats)
        bar.set_postfix(loss=f"{stats['train/loss']:.3f}", lr=f'{lr:.4f}',
                        pairs_s=f"{stats['train/pairs_per_s']:.0f}")

    def tracked(self, indices):
        """(B,) bool on the device: which samples have a tracked region (None: all count)."""
        if self.region_valid is None:
            return None
        return self.region_valid[indices.to(self.device, non_blocking=True)]

    def train_step(self, views, tracked=None):
        """One optimizer step on the normalised views (in view order) of one batch.

        ``tracked``: (B,) bool, samples whose region term counts (None: all). Returns the
        detached (total, term 1, ...) losses as one tensor, without a host sync; the region
        term is NaN for a batch without a tracked pair (nothing to log).
        """
        pairs = [(views[q], views[k]) for _, q, k in self.variant.terms]
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            per_sample, _, keys = self.forward(pairs)
        terms, logged = [], []
        for name, losses in zip(self.term_names, per_sample):
            if name == 'region' and tracked is not None:
                # untracked pairs carry whole-frame "regions": they stay out of this term
                weight = tracked.to(losses.dtype)
                # DDP averages the ranks' gradients, so each rank divides by the mean tracked
                # count over ranks: the average is then the global masked mean (a global
                # count of 0 leaves 0 / (1 / W))
                count = distributed.mean_over_ranks(weight.sum())
                terms.append((losses * weight).sum() / count.clamp(min=1 / self.world.size))
                # a batch without a tracked pair has no region loss to log (not a perfect 0)
                logged.append(torch.where(count > 0, terms[-1].detach(), float('nan')))
            else:
                terms.append(losses.mean())
                logged.append(terms[-1].detach())
        loss = sum(w * t for w, t in zip(self.term_weights, terms))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.enqueue_terms(keys)
        return torch.stack([loss.detach()] + logged)

    def _check_finite(self, flags, first_step, epoch):
        # any rank's non-finite loss stops every rank at the same step
        bad = distributed.mean_over_ranks(torch.stack(flags).float()) > 0
        if bad.any().item():
            step = first_step + int(bad.float().argmax().item())     # 0-based, global
            in_epoch = step - epoch * len(self.loader) + 1              # as the progress bar
            remedy = 'lower optim.lr' + (' or use train.precision=fp32'
                                         if self.amp_dtype is not None else '')
            last = latest_checkpoint(self.s.train.run_dir)
            then = (f'then resume from {last} (--train.resume=true)' if last else
                    'then start again (no checkpoint was written yet)')
            raise UserError(f'non-finite loss at step {in_epoch} of epoch {epoch + 1}; '
                            f'stopped without saving: {remedy}, {then}')

    @torch.no_grad()
    def evaluate_knn(self):
        self.model.eval()
        encoder = self.model.encoder_q
        bank = extract_features(encoder.features, self.knn[0], self.device,
                                self.s.train.channels_last, self.amp_dtype)
        # one file for both (no knn_val_path): its images are decoded once, as eval.py does
        queries = bank if self.knn[1] is self.knn[0] else extract_features(
            encoder.features, self.knn[1], self.device, self.s.train.channels_last,
            self.amp_dtype)
        self.model.train()
        return weighted_knn(*bank, *queries, k=self.s.logging.knn_k,
                            temperature=self.s.logging.knn_temperature,
                            leave_one_out=queries is bank)
