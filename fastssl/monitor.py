"""TensorBoard monitoring of a run: the real ``torch.utils.tensorboard`` writer, and the
training statistics it logs.

Scalars under ``train/`` (loss, loss_<term>, lr, pairs_per_s, data_wait_fraction,
gpu_memory_gib; each a :class:`Window` of steps), ``knn/`` (top1, top5), ``invariance/``
(<transformation>/top10, <transformation>/top25, seconds: ``fastssl.invariance_monitor``) and
an image grid of augmented pairs (``pairs``) at the start; the training command adds its
resolved config as text (``config``).

A log that cannot be written (disk full, I/O error) ends the run with one line naming the log
folder and the OS's reason (:func:`fastssl_common.atomic.write_errors`), not a traceback.
"""
import contextlib
import math
import threading
from dataclasses import dataclass, field

import torch
import torchvision
from torch.utils.tensorboard import SummaryWriter

from fastssl_common.atomic import write_errors

from . import distributed


def _leave_out_writer_thread_errors():
    """Wrap ``threading.excepthook`` (once) so that it leaves out a failed write of
    TensorBoard's writer thread: the thread keeps the error and raises it again at the next
    call from the run, where it becomes one line; its own traceback would be a second,
    noisier report."""
    report = threading.excepthook
    if getattr(report, 'leaves_out_tensorboard', False):
        return

    def hook(args):
        if not (isinstance(args.exc_value, OSError)
                and type(args.thread).__name__ == '_AsyncWriterThread'):
            report(args)
    hook.leaves_out_tensorboard = True
    threading.excepthook = hook


class Monitor:
    """``purge_step``: the first step this writer logs. Events the folder's earlier event
    files hold from that step on (the epochs after the checkpoint a run resumed from, which
    it trains again, or a run before it that left no checkpoint) are hidden by TensorBoard's
    readers, so that each step shows one point; None keeps them all."""

    def __init__(self, run_dir, enabled=True, purge_step=None):
        self.run_dir, self.writer = run_dir, None
        if enabled:
            _leave_out_writer_thread_errors()
            with self._writing():
                self.writer = SummaryWriter(log_dir=run_dir, purge_step=purge_step)

    @contextlib.contextmanager
    def _writing(self):
        """A failed write of the log becomes one UserError line naming its folder."""
        with write_errors(f'the TensorBoard log in {self.run_dir}', self.run_dir,
                          (self.run_dir,)):
            yield

    def scalars(self, step, **values):
        if self.writer is None:
            return
        with self._writing():
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def pair_grid(self, step, views, count, tag='pairs'):
        """``views``: float (V, B, 3, H, W) in [0, 1]; one row per sample, its views side by
        side."""
        if self.writer is None or count <= 0:
            return
        shown = views[:, :count].transpose(0, 1).flatten(0, 1).float().cpu().clamp(0, 1)
        grid = torchvision.utils.make_grid(shown, nrow=views.shape[0], padding=2)
        with self._writing():
            self.writer.add_image(tag, grid, step)

    def text(self, tag, markdown, step=0):
        """Text for TensorBoard's Text tab, which renders it as Markdown."""
        if self.writer is not None:
            with self._writing():
                self.writer.add_text(tag, markdown, step)

    def figure(self, tag, figure, step=0):
        """A matplotlib figure, as an image."""
        if self.writer is not None:
            with self._writing():
                self.writer.add_figure(tag, figure, step)

    def flush(self):
        if self.writer is not None:
            with self._writing():
                self.writer.flush()

    def close(self):
        if self.writer is not None:
            with self._writing():
                self.writer.close()


def gpu_memory_gib(device):
    if device.type != 'cuda':
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 30


@dataclass
class Window:
    """The steps since the last log: detached (total, term...) losses and non-finite flags
    (device tensors: no per-step host sync), seconds waiting for data and busy, global pairs."""
    losses: list = field(default_factory=list)
    flags: list = field(default_factory=list)
    wait: float = 0.0
    busy: float = 0.0
    pairs: int = 0

    def add(self, losses, pairs):
        self.losses.append(losses)
        self.flags.append(~torch.isfinite(losses[0]))
        self.pairs += pairs

    def settle(self):
        """Wait until the window's last step has run on the device."""
        if self.flags:
            self.flags[-1].item()

    def stats(self, lr, term_names, device):
        """The window's ``train/`` scalars; losses and data wait are means over ranks (one
        all-reduce, so every rank must call this)."""
        seconds = max(self.wait + self.busy, 1e-9)
        # a term is NaN in steps where it had nothing to average (the region term of a batch
        # without a tracked pair): left out of its mean, and not logged for a window of such
        values = torch.cat([torch.stack(self.losses).nanmean(0),
                            torch.tensor([self.wait / seconds], device=device)])
        means = distributed.mean_over_ranks(values).tolist()
        stats = {'train/loss': means[0], 'train/lr': lr,
                 **{f'train/loss_{name}': value for name, value in zip(term_names, means[1:-1])
                    if not math.isnan(value)},
                 'train/pairs_per_s': self.pairs / seconds,
                 'train/data_wait_fraction': means[-1]}
        memory = gpu_memory_gib(device)
        if memory is not None:
            stats['train/gpu_memory_gib'] = memory
        return stats
