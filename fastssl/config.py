"""Configuration: the fastargs sections every entry point reads, declared up front.

One source of truth: ``configs/*.yaml`` recipes, overridden by ``--section.key=value`` on the
command line. Anything a user might want to change is a parameter here, with its default and
a description (``python train.py --help`` prints them). Unknown keys, wrong types, missing
files are reported as one ``error:`` line naming the key or file.
"""
import os
import sys

import yaml
from fastargs import Param, Section
from fastargs.config import Config
from fastargs.dict_utils import expand_keys, fix_dict
from fastargs.validation import Checker

from fastssl_common.errors import UserError


class Int(Checker):
    """An integer; unlike fastargs' Int it refuses 3.7 instead of truncating it."""

    def check(self, value):
        if isinstance(value, bool):
            raise TypeError()
        if isinstance(value, float) and not value.is_integer():
            raise TypeError()
        return int(value)

    def help(self):
        return "an int"


class Float(Checker):
    def check(self, value):
        if isinstance(value, bool):
            raise TypeError()
        return float(value)

    def help(self):
        return "a float"


class Bool(Checker):
    """true/false, yes/no, 1/0 (fastargs' Bool would read the string 'false' as True)."""
    WORDS = {'true': True, 'yes': True, '1': True, 'false': False, 'no': False, '0': False}

    def check(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in self.WORDS:
            return self.WORDS[value.lower()]
        raise TypeError()

    def help(self):
        return "a boolean (true/false)"


class Str(Checker):
    def check(self, value):
        if isinstance(value, str):
            return value
        raise TypeError()

    def help(self):
        return "a string"


class OneOf(Checker):
    def __init__(self, *choices):
        self.choices = choices

    def check(self, value):
        if value in self.choices:
            return value
        raise ValueError()

    def help(self):
        return "one of " + "/".join(self.choices)


def declare_sections(cfg):
    """Declare every section on the fastargs Config ``cfg``."""
    Section('data', 'Training data (a .beton from writers/)', config_descriptor=cfg).params(
        path=Param(Str(), 'training .beton', required=True),
        batch_size=Param(Int(), 'pairs per step, global: split evenly over torchrun ranks',
                         default=256),
        resolution=Param(Int(), 'output side of each view, px', default=224),
        num_workers=Param(Int(), 'FFCV loader threads per process (0 = all cores, shared '
                          'among the torchrun ranks on a machine)', default=0),
        order=Param(OneOf('random', 'quasi_random', 'sequential'), 'sample order',
                    default='random'),
        os_cache=Param(Bool(), 'let the OS page cache hold the .beton', default=True),
    )
    Section('augment', 'MoCo v2 augmentation (torchvision semantics)',
            config_descriptor=cfg).params(
        placement=Param(OneOf('auto', 'gpu', 'cpu', 'none'),
                        'photometric augment: auto = gpu when CUDA is present, else cpu',
                        default='auto'),
        crop_scale_min=Param(Float(), 'RandomResizedCrop scale min', default=0.2),
        crop_scale_max=Param(Float(), 'RandomResizedCrop scale max', default=1.0),
        crop_ratio_min=Param(Float(), 'RandomResizedCrop aspect min', default=3 / 4),
        crop_ratio_max=Param(Float(), 'RandomResizedCrop aspect max', default=4 / 3),
        flip_prob=Param(Float(), 'horizontal flip probability', default=0.5),
        region_context_min=Param(Float(), 'region views: context margin added on each side, '
                                 'fraction of the tracked box (min)', default=0.0),
        region_context_max=Param(Float(), 'region views: context margin (max)', default=0.3),
        region_scale_min=Param(Float(), 'region views: RandomResizedCrop scale within the '
                               'region (min)', default=0.5),
        region_scale_max=Param(Float(), 'region views: crop scale within the region (max)',
                               default=1.0),
        brightness=Param(Float(), 'ColorJitter brightness', default=0.4),
        contrast=Param(Float(), 'ColorJitter contrast', default=0.4),
        saturation=Param(Float(), 'ColorJitter saturation', default=0.4),
        hue=Param(Float(), 'ColorJitter hue', default=0.1),
        p_jitter=Param(Float(), 'probability of ColorJitter', default=0.8),
        p_gray=Param(Float(), 'probability of RandomGrayscale', default=0.2),
        p_blur=Param(Float(), 'probability of GaussianBlur', default=0.5),
        sigma_min=Param(Float(), 'GaussianBlur sigma min', default=0.1),
        sigma_max=Param(Float(), 'GaussianBlur sigma max', default=2.0),
    )
    Section('model', 'Encoder', config_descriptor=cfg).params(
        arch=Param(OneOf('resnet18', 'resnet50'), 'torchvision backbone (random init)',
                   default='resnet50'),
        proj_hidden=Param(Int(), 'MLP head hidden width (0 = backbone feature dim)', default=0),
        proj_dim=Param(Int(), 'MLP head output (key) dim', default=128),
    )
    Section('moco', 'MoCo v2', config_descriptor=cfg).params(
        queue_size=Param(Int(), 'K, keys in the queue (clamped for small datasets)',
                         default=65536),
        momentum=Param(Float(), 'key encoder EMA momentum m', default=0.999),
        temperature=Param(Float(), 'InfoNCE temperature T', default=0.2),
        bn_splits=Param(Int(), 'split-BN sub-batches on one device (1 = plain BN); under '
                        'torchrun shuffle-BN across ranks replaces it', default=8),
        frame_weight=Param(Float(), 'weight of the image/frame-pair InfoNCE term', default=1.0),
        region_weight=Param(Float(), 'weight of the region-pair InfoNCE term (rt, fti_rt)',
                            default=1.0),
        separate_queues=Param(Bool(), 'fti_rt: frame and region terms get their own key '
                              'queues (default: one shared queue)', default=False),
    )
    Section('optim', 'SGD with cosine schedule', config_descriptor=cfg).params(
        lr=Param(Float(), 'lr for a global batch of 256 (scaled linearly with the global batch)',
                 default=0.03),
        momentum=Param(Float(), 'SGD momentum', default=0.9),
        weight_decay=Param(Float(), 'weight decay', default=1e-4),
        warmup_epochs=Param(Float(), 'linear warmup epochs', default=0.0),
    )
    Section('train', 'Training run', config_descriptor=cfg).params(
        variant=Param(OneOf('mocov2', 'mocov2_frames', 'fti', 'rt', 'fti_rt'),
                      'positives: two crops of an image (mocov2), of a video frame '
                      '(mocov2_frames), frames i and i+k of a video (fti), one tracked region '
                      'at i and i+k (rt), or both (fti_rt)', default='mocov2'),
        epochs=Param(Int(), 'epochs', default=200),
        seed=Param(Int(), 'seed of data order, augment draws and init', default=0),
        device=Param(Str(), "'auto', 'cpu', 'cuda' or 'cuda:N'", default='auto'),
        precision=Param(OneOf('auto', 'fp32', 'bf16', 'fp16'),
                        'auto = bf16 on GPUs that support it, fp32 on CPU', default='auto'),
        channels_last=Param(Bool(), 'channels_last memory format', default=True),
        compile=Param(Bool(), 'torch.compile the encoders', default=False),
        run_dir=Param(Str(), 'run folder: TensorBoard events, checkpoints, config',
                      default='runs/mocov2'),
        resume=Param(Bool(), 'continue from the last checkpoint in run_dir', default=False),
        checkpoint_every=Param(Int(), 'checkpoint every N epochs (and at the end)', default=10),
    )
    Section('dist', 'Several processes started by torchrun (unused in a single process)',
            config_descriptor=cfg).params(
        timeout_s=Param(Int(), 'seconds a collective waits for the other ranks before the run '
                        'stops with an error naming the rank (a rank died or stalled)',
                        default=1800),
    )
    Section('logging', 'TensorBoard monitoring', config_descriptor=cfg).params(
        log_every=Param(Int(), 'steps between scalar logs (and non-finite checks)', default=20),
        image_grid=Param(Int(), 'pairs shown in the start-of-training image grid (0 = off)',
                         default=8),
        progress=Param(Bool(), 'tqdm progress bar', default=True),
        knn_train_path=Param(Str(), 'labelled .beton: kNN memory bank ("" = off)', default=''),
        knn_val_path=Param(Str(), 'labelled .beton: kNN queries', default=''),
        knn_every=Param(Int(), 'kNN monitor every N epochs', default=10),
        knn_k=Param(Int(), 'kNN neighbours', default=200),
        knn_temperature=Param(Float(), 'kNN weighting temperature', default=0.07),
    )


def _flatten(tree, prefix=()):
    for key, value in tree.items():
        path = prefix + (str(key),)
        if isinstance(value, dict):
            yield from _flatten(value, path)
        else:
            yield path, value


def parse_cli(argv):
    """Split argv into (config files, {dotted key: value}); UserError on a malformed item."""
    files, overrides = [], {}
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in ('--config-file', '-C'):
            if not items:
                raise UserError(f"{item} needs a file path")
            files.append(items.pop(0))
        elif item.startswith('--config-file='):
            files.append(item.split('=', 1)[1])
        elif item.startswith('--') and '=' in item:
            key, value = item[2:].split('=', 1)
            overrides[key] = value
        elif item.startswith('--') and items and not items[0].startswith('--'):
            overrides[item[2:]] = items.pop(0)
        else:
            raise UserError(f"cannot parse argument '{item}' (use --section.key=value)")
    return files, overrides


def help_text(cfg):
    lines = [f"usage: {os.path.basename(sys.argv[0])} --config-file FILE.yaml "
             "[--section.key=value ...]", ""]
    for path, param in cfg.entries.items():
        default = 'required' if param.required else repr(param.default)
        lines.append(f"  --{'.'.join(path):28s} {param.checker.help():32s} "
                     f"[{default}] {param.desc}")
    return "\n".join(lines)


def load_config(argv, declare=declare_sections):
    """Build, fill and validate the config; returns the fastargs Config."""
    cfg = Config()
    declare(cfg)
    if '--help' in argv or '-h' in argv:
        print(help_text(cfg))
        sys.exit(0)
    files, overrides = parse_cli(argv)
    known = set(cfg.entries)
    for fname in files:
        if not os.path.isfile(fname):
            raise UserError(f"config file not found: {fname}")
        try:
            with open(fname) as handle:
                content = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise UserError(f"config file {fname} is not valid YAML ({err.problem})") from None
        if not isinstance(content, dict):
            raise UserError(f"config file {fname} must hold a mapping of sections")
        for path, _ in _flatten(fix_dict(expand_keys(content))):
            if path not in known:
                raise UserError(f"unknown config key '{'.'.join(path)}' in {fname}")
        cfg.collect(content)
    for key in overrides:
        if tuple(key.split('.')) not in known:
            raise UserError(f"unknown config key '{key}' on the command line")
    cfg.collect(overrides)
    for path, param in cfg.entries.items():
        key = '.'.join(path)
        if param.required and cfg.content.get(path) is None:
            raise UserError(f"missing required config key '{key}'")
        try:
            cfg[path]
        except Exception:
            raise UserError(f"config key '{key}' must be {param.checker.help()}, "
                            f"got {cfg.content.get(path)!r}") from None
    return cfg


def as_dict(cfg):
    """Resolved config as a nested dict (what is saved next to the checkpoints)."""
    out = {}
    for path in cfg.entries:
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = cfg[path]
    return out


class Settings:
    """Attribute access to a resolved config: ``s.data.batch_size``."""

    def __init__(self, tree):
        for key, value in tree.items():
            setattr(self, key, Settings(value) if isinstance(value, dict) else value)

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, Settings) else v) for k, v in vars(self).items()}


def load_settings(argv):
    return Settings(as_dict(load_config(argv)))
