"""Training-step throughput of MoCo v2 against the hardware: precision and layout modes, the
FLOPs a pair costs and the fraction of the device's peak, the GPU-side augment's share,
whether the real FFCV pair loader keeps up, the largest batch that fits, host-device syncs.

    python -m benchmarks.train_step [--archs resnet50 resnet18] [--resolution 224]
        [--batch-size B] [--steps N] [--warmup N] [--modes fp32 bf16_cl fp16_cl bf16_cl_compile]
        [--samples N] [--workers N] [--device auto|cpu|cuda|cuda:N]
        [--loader-betons VARIANT=PATH ...] [--profile OUT] [--json OUT] [--quick]

Everything runs through the trainer's own pieces (``fastssl.trainer.Trainer``: its
``train_step``, ``prepare_views`` and, for the loader, ``fit``), configured like
``train.py`` through ``fastssl.config``. One run, one machine:

(s) **Synthetic device-resident input** (the compute ceiling): normalised random views
    already on the device, ``Trainer.train_step`` only (query forward + backward, momentum
    update, key forward, InfoNCE against the queue, SGD step, enqueue), per model and mode:

    - ``fp32``: fp32, NCHW (the cuDNN default lets convolutions use TF32 on Ampere and later);
    - ``bf16_cl``: channels-last + bf16 autocast;
    - ``fp16_cl``: channels-last + fp16 autocast + GradScaler (CUDA only);
    - ``bf16_cl_compile``: channels-last + bf16 + ``torch.compile`` (the warm-up steps pay the
      compilation; on a CPU that takes minutes, so ``--quick`` leaves it out).

    Rows give pairs/s, ms per step, model TFLOP/s and the fraction of the device's peak for
    the mode's precision (dense tensor-core peak from the table ``PEAK_TFLOPS`` in
    ``benchmarks.common``; "n/a" on a CPU or an unlisted GPU), and the peak device memory.
    FLOPs per pair are counted once per model with ``torch.utils.flop_counter.FlopCounterMode``
    over one eager fp32 step: the query encoder forward and backward and the key encoder
    forward, both views, plus the InfoNCE matmuls (the queue is clamped to the benchmark's
    dataset; at K = 65536 its matmuls add ~1 % to a ResNet-50 step).
(c) **Supervised ceiling**: the same torchvision backbone trained supervised (cross-entropy,
    SGD) on device-resident images at the same batch, in ``fp32`` and ``bf16_cl``: images/s.
    A MoCo pair costs one forward + backward (query) and one forward (key), about 4/3 of a
    supervised image, so 0.75 x supervised images/s is what MoCo could reach; the ratio
    MoCo pairs/s / (0.75 x supervised images/s) says how close it gets.
(g) **GPU-side preprocessing**: ``Trainer.prepare_views`` on device-resident uint8 views with
    host indices, as the loader delivers them: uint8 -> float, the batched MoCo v2
    photometric augment (``augment.placement=gpu``), ImageNet normalisation; reported as a
    fraction of (preprocessing + train step). On a CPU device it is the same torch code.
(l) **Real FFCV loader end to end**, per variant: ``Trainer.fit`` on a ``.beton`` — for
    ``mocov2`` one of ``--samples`` JPEGs (~400 px, quality 90, made from the package photos
    by ``benchmarks.data``, as for the loader benchmark), for others the files
    ``--loader-betons VARIANT=PATH`` names (e.g. ``fti=pairs.beton fti_rt=pairs.beton``) —
    for enough epochs to take ``--steps`` steps after the first epoch (which holds the
    pipeline compilation and is left out), logging every step: the median of the trainer's
    own ``train/pairs_per_s`` and ``train/data_wait_fraction`` (time blocked on the loader /
    step time) over those steps, each epoch's first step excluded (the mean with them is
    reported too); and the loader alone (its second epoch, nothing trained): pairs/s. Mode
    ``bf16_cl`` with the GPU augment on CUDA; ``fp32`` with the in-loader Numba augment on a
    CPU.
(m) **Largest batch** (CUDA only): the largest multiple of 8 for which two ``bf16_cl``
    training steps of the first model run without running out of memory (doubling, then
    bisection). The key encoder keeps no activations (no grad), so it costs weights only.
(y) **Host-device syncs** (CUDA only): ``torch.cuda.set_sync_debug_mode('error')`` around
    ``prepare_views`` + ``train_step`` (after warm-up; uint8 views from host memory, as the
    loader yields them), in ``bf16_cl`` and ``fp16_cl``
    (GradScaler's step reads its inf check on the host: a sync by design).

``--profile OUT`` also writes ``torch.profiler``'s top kernels (by device time) of a few
steps of the first model (``bf16_cl`` on CUDA), to show where a missed target's time goes.

Targets (for one H100/H200; printed with PASS/MISS only when a GPU ran): ``bf16_cl`` >= 2.5x
``fp32``; ResNet-50 MoCo pairs/s >= 0.85 x (0.75 x supervised images/s); data wait < 5 % of
the step for ``mocov2`` and ``fti_rt``; GPU-side preprocessing < 10 % of the step.

``--quick`` is the CPU smoke run for tests (ResNet-18 at 32 px, batch 8, 2 steps, fp32 and
bf16_cl, 32 samples, 1 loader thread); its numbers mean nothing.

This module holds the command (presets, options, the run); the sections are measured in
``benchmarks.train_step_sections`` and printed by ``benchmarks.train_step_report``.
"""
import argparse
import os
import re
import tempfile

import torch

from benchmarks.common import (
    add_output_options,
    apply_preset,
    benchmark_parser,
    check_json_folder,
    check_loader_threads,
    check_output_file,
    check_view_resolution,
    machine_info,
    require_at_least,
    write_results,
)
from benchmarks.data import build_beton, check_generated_space, make_jpegs
from benchmarks.train_step_report import loader_needs, print_report, ratio_rows
from benchmarks.train_step_sections import (
    MODES,
    fp16_sync_row,
    largest_batch,
    loader_row,
    preprocess_row,
    profile_steps,
    supervised_rows,
    synthetic_rows,
)
from fastssl_common.atomic import write_json
from fastssl_common.errors import UserError, run_cli

GPU_DEFAULTS = dict(archs=['resnet50', 'resnet18'], resolution=224, batch_size=256, steps=30,
                    warmup=10, samples=4096, modes=list(MODES))
# a 2-core CPU does ~1 ResNet-50 pair/s: small counts keep the default run near 10 minutes
CPU_DEFAULTS = dict(archs=['resnet50', 'resnet18'], resolution=224, batch_size=8, steps=2,
                    warmup=1, samples=64, modes=['fp32', 'bf16_cl'])
QUICK = dict(archs=['resnet18'], resolution=32, batch_size=8, steps=2, warmup=1, samples=32,
            workers=1, modes=['fp32', 'bf16_cl'])


def build_parser():
    parser = benchmark_parser('train_step', __doc__.split('\n\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--archs', nargs='+', choices=['resnet50', 'resnet18'])
    parser.add_argument('--modes', nargs='+', choices=list(MODES))
    parser.add_argument('--resolution', type=int)
    parser.add_argument('--batch-size', type=int, help='pairs per step')
    parser.add_argument('--steps', type=int, help='timed steps per mode')
    parser.add_argument('--warmup', type=int, help='untimed steps per mode (compilation)')
    parser.add_argument('--samples', type=int, help='JPEGs in the loader benchmark .beton')
    parser.add_argument('--workers', type=int,
                        help='FFCV loader threads (default and 0: all cores)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--loader-betons', nargs='+', default=[], metavar='VARIANT=PATH',
                        help='more end-to-end loader runs, e.g. fti=pairs.beton fti_rt=pairs.beton')
    parser.add_argument('--profile', metavar='OUT', help="also write torch.profiler's top "
                        "kernels of the first model's step to OUT")
    add_output_options(parser, 'CPU smoke run for tests: ResNet-18 at 32 px, batch 8, 2 steps, '
                       'fp32 and bf16_cl, 32 samples, 1 loader thread')
    return parser


# what --help names; torch.device would also take 'meta', 'xla'..., which fail deep in a step,
# and an index written as torch.device cannot parse it ('cuda:01')
DEVICE = re.compile(r'auto|cpu|cuda(:(0|[1-9]\d{0,5}))?')


def resolve_device(name):
    """The torch device of ``--device``; UserError for anything but auto, cpu, cuda, cuda:N
    (:data:`DEVICE`) or a GPU that is absent."""
    if not DEVICE.fullmatch(name):
        raise UserError(f'--device must be auto, cpu, cuda or cuda:N, got {name!r}')
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'--device {name}: CUDA is not available')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f'--device {name}: this machine has {torch.cuda.device_count()} '
                            'CUDA device(s)')
    return device


def resolve(args):
    from fastssl.config import RESOLUTION_MIN

    device = resolve_device(args.device)
    apply_preset(args, QUICK if args.quick else GPU_DEFAULTS if device.type == 'cuda'
                 else CPU_DEFAULTS)
    require_at_least(args, ('resolution', 'batch_size', 'steps', 'warmup', 'samples'))
    check_loader_threads(args)
    # the trainer's own floor (data.resolution), which it would check only once a section runs
    check_view_resolution(args, RESOLUTION_MIN)
    if args.batch_size % 8:
        raise UserError("--batch-size must be a multiple of 8 (split-BN's 8 groups)")
    if args.samples < 2 * args.batch_size:
        raise UserError(f'--samples {args.samples} must be at least twice --batch-size '
                        f'{args.batch_size} (the loader benchmark needs two steps)')
    check_generated_space(args.samples)
    args.loader_betons = [parse_loader_beton(item, args.batch_size)
                          for item in args.loader_betons]
    check_json_folder(args.json)
    check_output_file(args.profile, '--profile')
    if args.profile and args.json and os.path.abspath(args.profile) == os.path.abspath(args.json):
        raise UserError(f'--profile and --json name the same file, {args.json}')
    args.device = str(device)     # cuda:N stays cuda:N for the trainer
    return args, device


def parse_loader_beton(item, batch_size):
    """``(variant, path)`` of one ``--loader-betons`` item, the file checked as the trainer
    would check it (header, size, fields, tracked regions), before the first section runs."""
    from fastssl.variants import VARIANTS
    from fastssl_common.beton_file import check_layout
    variant, _, path = item.partition('=')
    if variant not in VARIANTS or not path:
        raise UserError(f"--loader-betons {item!r}: expected VARIANT=PATH with VARIANT one of "
                        f"{', '.join(VARIANTS)}")
    if not os.path.isfile(path):
        raise UserError(f'--loader-betons {variant}: no such file: {path}')
    spec = VARIANTS[variant]
    try:
        layout = check_layout(path)
    except UserError as err:
        raise UserError(f'--loader-betons {variant}: {err}') from None
    except OSError as err:
        raise UserError(f'--loader-betons {variant}: cannot read {path} ({err.strerror})'
                        ) from None
    missing = [name for name in spec.required if name not in layout.field_names]
    if missing:
        raise UserError(f"--loader-betons {variant}: {path} has no {', '.join(missing)} "
                        f"field (fields: {', '.join(layout.field_names)}); {variant} needs a "
                        f'.beton from {spec.writer}')
    if layout.num_samples < batch_size:
        raise UserError(f'--loader-betons {variant}: {path} holds {layout.num_samples} '
                        f'samples, fewer than one batch of {batch_size}')
    if spec.uses_regions:
        from loaders.pair_loader import tracked_pairs
        if not tracked_pairs(path).any():
            raise UserError(f'--loader-betons {variant}: no pair of {path} has a tracked '
                            f'region; {variant} needs a .beton from {spec.writer} (N > 0)')
    return variant, path


def run(args, device, workdir):
    info = machine_info(device=device)
    src = os.path.join(workdir, 'jpeg')
    n_photos = make_jpegs(src, args.samples)
    beton = os.path.join(workdir, 'data.beton')
    build_beton(src, beton, 400, args.workers)
    print(f'wrote {beton}: {args.samples} JPEGs (~400 px) from {n_photos} package photos',
          flush=True)
    gpu = device.type == 'cuda'
    loader_mode = 'bf16_cl' if gpu else 'fp32'
    config = {name: getattr(args, name) for name in (
        'archs', 'modes', 'resolution', 'batch_size', 'steps', 'warmup', 'samples', 'workers',
        'device', 'quick', 'loader_betons')}
    result = {}

    def measured(section, value):
        # on a leased node a run stopped at its time limit keeps the sections it finished
        result[section] = value
        if args.json:
            write_json(args.json, {'machine': info, 'config': config, 'complete': False,
                                   **result})

    measured('synthetic', synthetic_rows(beton, workdir, args, device))
    if args.profile:  # early: what bounds the step is what a short lease most needs
        measured('profile', profile_steps(beton, workdir, args, device, args.profile))
    measured('supervised', supervised_rows(args, device))
    measured('ratios', ratio_rows(result['synthetic'], result['supervised'], gpu))
    measured('preprocess', preprocess_row(beton, workdir, args, device, loader_mode))
    measured('fp16_sync', fp16_sync_row(beton, workdir, args, device))
    measured('loaders', [loader_row(path, variant, workdir, args, device, loader_mode)
                         for variant, path in [('mocov2', beton), *args.loader_betons]])
    measured('loader_needs', loader_needs(result['synthetic'], result['loaders'],
                                          args.workers))
    measured('largest_batch', largest_batch(beton, workdir, args, device))
    print_report(info, config, result)
    if args.json:
        write_results(args.json, {'machine': info, 'config': config, 'complete': True,
                                  **result})


def main(argv=None):
    args, device = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-step-') as workdir:
        run(args, device, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
