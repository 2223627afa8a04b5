"""TensorBoard monitoring of a run: the real ``torch.utils.tensorboard`` writer.

Scalars under ``train/`` (loss, lr, pairs_per_s, data_wait_fraction, gpu_memory_gib),
``knn/`` (top1, top5) and an image grid of augmented pairs (``pairs``) at the start.
"""
import torch
import torchvision
from torch.utils.tensorboard import SummaryWriter


class Monitor:
    def __init__(self, run_dir, enabled=True):
        self.writer = SummaryWriter(log_dir=run_dir) if enabled else None

    def scalars(self, step, **values):
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def pair_grid(self, step, views, count, tag='pairs'):
        """``views``: float (V, B, 3, H, W) in [0, 1]; one row per sample, its views side by side."""
        if self.writer is None or count <= 0:
            return
        shown = views[:, :count].transpose(0, 1).flatten(0, 1).float().cpu().clamp(0, 1)
        grid = torchvision.utils.make_grid(shown, nrow=views.shape[0], padding=2)
        self.writer.add_image(tag, grid, step)

    def flush(self):
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


def gpu_memory_gib(device):
    if device.type != 'cuda':
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 30
