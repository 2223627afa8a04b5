"""The torchvision baseline of ``benchmarks.loader``: MoCo v2's reference input pipeline, an
ImageFolder-style Dataset (PIL open + ``convert('RGB')``) with ``TwoCropsTransform`` of the v1
``torchvision.transforms`` on PIL images, and a ``DataLoader`` with persistent workers."""
import signal

import torch
import torchvision.transforms as T
from PIL import Image

from loaders.photometric_params import blur_kernel_size


class ImageFileDataset(torch.utils.data.Dataset):
    """torchvision's ImageFolder behaviour over a given file list: PIL open, convert RGB."""

    def __init__(self, samples, transform):
        self.samples = samples
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        with open(path, 'rb') as handle:          # torchvision.datasets.folder.pil_loader
            image = Image.open(handle).convert('RGB')
        return self.transform(image), label


class TwoCropsTransform:
    """MoCo's ``TwoCropsTransform``: two independent draws of the base transform."""

    def __init__(self, base_transform):
        self.base_transform = base_transform

    def __call__(self, x):
        return [self.base_transform(x), self.base_transform(x)]


def moco_v2_transform(resolution, full, scale):
    """MoCo v2's ``augmentation`` list (main_moco.py, --aug-plus) without Normalize."""
    ops = [T.RandomResizedCrop(resolution, scale=scale)]
    if full:
        kernel = blur_kernel_size(resolution, resolution)
        ops += [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5)]
    ops += [T.RandomHorizontalFlip(), T.ToTensor()]
    return TwoCropsTransform(T.Compose(ops))


def leave_sigterm_to_the_main_process(worker_id):
    """SIGTERM sent to the whole process group (a scheduler's time limit, ``scancel``) stops the
    main process, which then shuts its workers down; a worker killed by it made torch replace
    that clean stop with a 'DataLoader worker is killed by signal' RuntimeError traceback."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def torchvision_loader(samples, args, full, scale, seed):
    """A ``DataLoader`` of MoCo v2 pairs of ``samples`` ([(path, label)]) at ``args``'s
    resolution, batch size and worker processes; ``full``: the whole augment, else crop+flip."""
    dataset = ImageFileDataset(samples, moco_v2_transform(args.resolution, full, scale))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        drop_last=True, persistent_workers=args.workers > 0, generator=generator,
        worker_init_fn=leave_sigterm_to_the_main_process)
