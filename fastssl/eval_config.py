"""The settings of every ``eval.py`` command, declared up front, and the command registry.

Each command's ``declare_*`` declares its fastargs sections: the shared ``eval`` section
(backbone and labelled .betons) for knn and linear, plus one named after the command. The
backbone group (checkpoint, arch, device, precision) and the defaults come from
``fastssl.config``, which declares training's sections the same way; ranges are declared
with each parameter (``fastssl.config_loader``). The command modules hold only the logic.
"""
from typing import NamedTuple

from fastargs import Param, Section

from .config import (
    FLOAT32_BOUND,
    KNN_K,
    KNN_TEMPERATURE,
    RESOLUTION,
    RESOLUTION_MIN,
    SEED_MAX,
    backbone_params,
)
from .config_loader import Bool, Float, Int, OneOf, PathStr, Str
from .invariance_data import KINDS
from .invariance_settings import MIN_RESAMPLES, REPORTED_K, RESAMPLE_UNITS, Bootstrap


def declare_eval_section(cfg):
    """The ``eval`` section shared by the commands that evaluate a backbone on .betons."""
    Section('eval', 'Backbone and labelled data', config_descriptor=cfg).params(
        **backbone_params('checkpoint', 'arch'),
        train_path=Param(PathStr(), 'labelled .beton: kNN memory bank / probe training set',
                         required=True),
        val_path=Param(PathStr(), 'labelled .beton: queries / probe test set ("" = train_path)',
                       default=''),
        resolution=Param(Int(ge=RESOLUTION_MIN), 'centre-crop side, px', default=RESOLUTION),
        batch_size=Param(Int(gt=0), 'images per batch', default=256),
        num_workers=Param(Int(ge=0), 'FFCV loader threads (0 = all cores)', default=0),
        **backbone_params('device', 'precision'),
        output=Param(PathStr(), 'JSON file for the result ("" = print only)', default=''),
    )


def declare_knn(cfg):
    declare_eval_section(cfg)
    Section('knn', 'Weighted kNN (cosine similarity, votes exp(s / T))',
            config_descriptor=cfg).params(
        k=Param(Int(gt=0), 'neighbours', default=KNN_K),
        temperature=Param(Float(gt=0, lt=FLOAT32_BOUND), 'weighting temperature T',
                          default=KNN_TEMPERATURE),
    )


def declare_linear(cfg):
    declare_eval_section(cfg)
    Section('linear', 'Linear classifier on standardised frozen features',
            config_descriptor=cfg).params(
        optimizer=Param(OneOf('sgd', 'lbfgs'),
                        'sgd: mini-batch + cosine lr; lbfgs: full batch', default='sgd'),
        epochs=Param(Int(gt=0), 'sgd: passes over the features; lbfgs: iterations',
                     default=100),
        lr=Param(Float(gt=0, lt=FLOAT32_BOUND), 'sgd learning rate (lbfgs uses a line search)',
                 default=0.1),
        weight_decay=Param(Float(ge=0, lt=FLOAT32_BOUND), 'L2 penalty on the weights',
                           default=1e-4),
        batch_size=Param(Int(gt=0), 'sgd mini-batch (features, not images)', default=256),
        seed=Param(Int(ge=0, le=SEED_MAX), 'init and sample-order seed', default=0),
    )


def declare_export(cfg):
    Section('export', 'Write the backbone as torchvision ResNet weights',
            config_descriptor=cfg).params(
        **backbone_params('checkpoint'),
        out=Param(PathStr(), 'output .pth (torchvision key names)', required=True),
        **backbone_params('arch'),
    )


def declare_invariance(cfg):
    interval = Bootstrap()
    kinds = '; '.join(f'{k}: {v[2]}' for k, v in KINDS.items())
    Section('invariance', 'Invariance score (Purushwalkam & Gupta 2020) of backbones',
            config_descriptor=cfg).params(
        kind=Param(OneOf(*KINDS), f'dataset layout ({kinds})', required=True),
        root=Param(PathStr(), 'dataset root folder', required=True),
        checkpoints=Param(Str(), 'comma-separated checkpoints, each PATH or NAME=PATH (any '
                          'format model_io reads)', required=True),
        **backbone_params('arch'),
        top_k=Param(Str(), 'comma-separated K: mean of the K most invariant neurons',
                    default=','.join(map(str, REPORTED_K))),
        resolution=Param(Int(ge=RESOLUTION_MIN, special=(0,)),
                         "image side, px (0 = the dataset protocol's)", default=0),
        batch_size=Param(Int(gt=0), 'images per batch', default=64),
        num_workers=Param(Int(ge=0), 'image decoding threads (0 = all cores)', default=0),
        # fp32 by default: bf16 rounding creates ties at the thresholds, and the score's
        # >= (G) vs > (set counts) then counts them differently, changing the score.
        **backbone_params('device', 'precision', precision='fp32', precision_note=(
            ' (default fp32: bf16/fp16 rounding makes feature ties that change the score)')),
        output=Param(PathStr(), 'JSON file for the results ("" = none)', default=''),
        run_dir=Param(PathStr(), 'TensorBoard folder: one run per checkpoint ("" = none)',
                      default=''),
        plot=Param(PathStr(), 'PNG of score vs magnitude, rendered data ("" = none)', default=''),
        bootstrap=Param(Int(ge=MIN_RESAMPLES), "resamples of each score's bootstrap interval",
                        default=interval.resamples),
        confidence=Param(Float(gt=0, lt=1), 'confidence level of the interval',
                         default=interval.confidence),
        resample=Param(OneOf(*RESAMPLE_UNITS), 'what the bootstrap resamples: targets (each '
                       'with all its sets) or sets (within each target)', default=interval.unit),
        seed=Param(Int(ge=0, le=SEED_MAX), 'seed of the resamples and of random_init',
                   default=interval.seed),
        reference=Param(Bool(), 'add the random_init row (the architecture untrained)',
                        default=True),
    )


class Command(NamedTuple):
    declare: object  # declares the command's sections on a fastargs Config
    module: str      # whose ``run(settings)`` does the work, imported only when it runs
    about: str       # one line for ``eval.py --help``


# One command's heavy imports never slow another: modules are imported by name, on use.
COMMANDS = {
    'knn': Command(declare_knn, 'fastssl.knn_command',
                   'weighted kNN accuracy of a backbone on labelled .betons'),
    'linear': Command(declare_linear, 'fastssl.linear_command',
                      'linear probe accuracy on frozen backbone features'),
    'export': Command(declare_export, 'fastssl.export_command',
                      'write the backbone as a plain torchvision ResNet state dict'),
    'invariance': Command(declare_invariance, 'fastssl.invariance_command',
                          'invariance score (Purushwalkam & Gupta 2020) of backbones on '
                          'image sets'),
}
