"""Training-step throughput of MoCo v2 against the hardware: precision and layout modes, the
FLOPs a pair costs and the fraction of the device's peak, the GPU-side augment's share,
whether the real FFCV pair loader keeps up, the largest batch that fits, host-device syncs.

    python -m benchmarks.train_step [--archs resnet50 resnet18] [--resolution 224]
        [--batch-size B] [--steps N] [--warmup N] [--modes fp32 bf16_cl fp16_cl bf16_cl_compile]
        [--samples N] [--workers N] [--device auto|cpu|cuda] [--json OUT] [--quick]

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
    the mode's precision (dense tensor-core peak from the table ``PEAK_TFLOPS``; "n/a" on a
    CPU or an unlisted GPU), and the peak device memory. FLOPs per pair are counted once per
    model with ``torch.utils.flop_counter.FlopCounterMode`` over one eager fp32 step: the
    query encoder forward and backward and the key encoder forward, both views, plus the
    InfoNCE matmuls (the queue is clamped to the benchmark's dataset; at K = 65536 its
    matmuls add ~1 % to a ResNet-50 step).
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
"""
import argparse
import os
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (
    add_output_options,
    apply_preset,
    benchmark_parser,
    machine_info,
    print_machine,
    require_at_least,
    write_results,
)
from benchmarks.data import build_beton, make_jpegs
from fastssl.config import load_settings
from fastssl.normalize import normalize
from fastssl.trainer import Trainer
from fastssl_common.errors import UserError, run_cli

# key: (label, train.precision, train.channels_last, train.compile)
MODES = {
    'fp32': ('fp32 NCHW', 'fp32', False, False),
    'bf16_cl': ('channels-last + bf16', 'bf16', True, False),
    'fp16_cl': ('channels-last + fp16 + GradScaler', 'fp16', True, False),
    'bf16_cl_compile': ('channels-last + bf16 + torch.compile', 'bf16', True, True),
}
# Dense peak TFLOP/s by device name (first match wins): half = bf16/fp16 tensor cores,
# tf32 = what fp32 convolutions get with cuDNN's default allow_tf32. Vendor data sheets.
PEAK_TFLOPS = [
    ('H200', {'half': 989.4, 'tf32': 494.7}),
    ('H100 PCIe', {'half': 756.0, 'tf32': 378.0}),
    ('H100', {'half': 989.4, 'tf32': 494.7}),        # SXM ("H100 80GB HBM3")
    ('A100', {'half': 312.0, 'tf32': 156.0}),
    ('L4', {'half': 121.0, 'tf32': 60.0}),
    ('A10', {'half': 125.0, 'tf32': 62.5}),
    ('V100', {'half': 125.0, 'tf32': 15.7}),         # no TF32: fp32 peak
    ('T4', {'half': 65.0, 'tf32': 8.1}),
]
TARGETS = {'bf16_speedup': 2.5, 'data_wait': 0.05, 'preprocess': 0.10, 'vs_supervised': 0.85}
# a MoCo pair: query forward + backward (~3 forwards) + key forward = 4/3 supervised images
PAIR_PER_IMAGE = 0.75
SUPERVISED_MODES = ('fp32', 'bf16_cl')
DATA_WAIT_VARIANTS = ('mocov2', 'fti_rt')
GPU_DEFAULTS = dict(archs=['resnet50', 'resnet18'], resolution=224, batch_size=256, steps=30,
                    warmup=10, samples=4096, modes=list(MODES))
# a 2-core CPU does ~1 ResNet-50 pair/s: small counts keep the default run near 10 minutes
CPU_DEFAULTS = dict(archs=['resnet50', 'resnet18'], resolution=224, batch_size=8, steps=2,
                    warmup=1, samples=64, modes=['fp32', 'bf16_cl'])
QUICK = dict(archs=['resnet18'], resolution=32, batch_size=8, steps=2, warmup=1, samples=32,
            workers=1, modes=['fp32', 'bf16_cl'])


# ---------------------------------------------------------------------------- helpers

def peak_tflops(device, precision):
    """The device's dense peak for ``precision`` ('fp32' or half), or None (CPU, unknown)."""
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for pattern, peaks in PEAK_TFLOPS:
        if pattern in name:
            return peaks['tf32' if precision == 'fp32' else 'half']
    return None


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, count, device):
    """Seconds for ``count`` calls of ``fn``, device work included."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        fn()
    synchronize(device)
    return time.perf_counter() - start


def make_trainer(beton, run_dir, arch, mode, args, placement='gpu', extra=()):
    _, precision, channels_last, compile_ = MODES[mode]
    # the largest queue this dataset fills (what the trainer would clamp it to, quietly)
    queue = max(args.batch_size, (args.samples - args.batch_size) // args.batch_size
                * args.batch_size)
    return Trainer(load_settings([
        f'--data.path={beton}', f'--data.batch_size={args.batch_size}',
        f'--data.resolution={args.resolution}', f'--data.num_workers={args.workers}',
        f'--model.arch={arch}', f'--moco.queue_size={min(queue, 65536)}',
        f'--train.precision={precision}', f'--train.channels_last={channels_last}',
        f'--train.compile={compile_}', f'--augment.placement={placement}',
        f'--train.device={args.device}', f'--train.run_dir={run_dir}',
        '--logging.progress=false', '--logging.image_grid=0', *extra]))


def synthetic_views(trainer, batch, resolution):
    """Two normalised views on the device, in the trainer's memory format."""
    return [normalize(torch.rand(batch, 3, resolution, resolution, device=trainer.device),
                      trainer.memory_format) for _ in range(2)]


def raw_views(batch, resolution, device):
    """What the loader yields: uint8 views (B, 2, H, W, 3) and host indices."""
    views = torch.randint(0, 256, (batch, 2, resolution, resolution, 3), dtype=torch.uint8,
                          device=device)
    return views, torch.arange(batch)


def flops_per_pair(trainer, views):
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(views)
    return counter.get_total_flops() / views[0].shape[0]


def release(device):
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ---------------------------------------------------------------------------- sections

def measure_mode(beton, workdir, arch, mode, args, device, count_flops):
    """Timings of one model and mode on synthetic views (its trainer is freed on return);
    with ``count_flops`` also the FLOPs of one pair."""
    release(device)
    trainer = make_trainer(beton, os.path.join(workdir, f'syn_{arch}_{mode}'), arch, mode,
                           args)
    views = synthetic_views(trainer, args.batch_size, args.resolution)
    flops = flops_per_pair(trainer, views) if count_flops else None
    warmup = timed(lambda: trainer.train_step(views), args.warmup, device)
    seconds = timed(lambda: trainer.train_step(views), args.steps, device)
    row = dict(pairs_per_s=args.batch_size * args.steps / seconds,
               ms_per_step=1000 * seconds / args.steps, warmup_s=warmup)
    if device.type == 'cuda':
        row['peak_memory_gib'] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return row, flops


def synthetic_rows(beton, workdir, args, device):
    rows = []
    for arch in args.archs:
        flops = None
        for mode in args.modes:
            label, precision, _, compiled = MODES[mode]
            row = {'arch': arch, 'mode': mode, 'label': label}
            rows.append(row)
            if precision == 'fp16' and device.type != 'cuda':
                row['skipped'] = 'CUDA only'
                continue
            # FLOPs are counted in eager mode (the counter does not see compiled kernels)
            timings, counted = measure_mode(beton, workdir, arch, mode, args, device,
                                            count_flops=flops is None and not compiled)
            row.update(timings)
            flops = flops or counted
            print(f"  {arch} {label}: {row['pairs_per_s']:.1f} pairs/s "
                  f"(warm-up {row['warmup_s']:.1f}s)", flush=True)
        for row in rows:
            if row['arch'] == arch and 'pairs_per_s' in row and flops:
                row['gflops_per_pair'] = flops / 1e9
                row['tflops'] = flops * row['pairs_per_s'] / 1e12
                peak = peak_tflops(device, MODES[row['mode']][1])
                row['peak_fraction'] = row['tflops'] / peak if peak else None
    return rows


def preprocess_row(beton, workdir, args, device, mode):
    trainer = make_trainer(beton, os.path.join(workdir, 'preprocess'), args.archs[0], mode,
                           args, placement='gpu')
    # device-resident: the GPU-side work alone (the copy from the host overlaps compute)
    views, indices = raw_views(args.batch_size, args.resolution, device)
    normalised = synthetic_views(trainer, args.batch_size, args.resolution)
    prepare = lambda: trainer.prepare_views(views, indices, 0)  # noqa: E731
    step = lambda: trainer.train_step(normalised)  # noqa: E731
    timed(prepare, args.warmup, device)
    timed(step, args.warmup, device)
    prep_s = timed(prepare, args.steps, device) / args.steps
    step_s = timed(step, args.steps, device) / args.steps
    sync = sync_check(trainer, device)
    return {'arch': args.archs[0], 'mode': mode, 'preprocess_ms': 1000 * prep_s,
            'step_ms': 1000 * step_s, 'fraction': prep_s / (prep_s + step_s), 'sync': sync}


def sync_check(trainer, device):
    """None on a CPU; 'none' when prepare_views + train_step never synchronise the host
    (views from host memory, as the loader yields them), else the first complaint."""
    if device.type != 'cuda':
        return None
    views, indices = raw_views(trainer.rank_batch, trainer.s.data.resolution, 'cpu')
    trainer.train_step(trainer.prepare_views(views, indices, 0)[0])  # warm
    synchronize(device)
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(2):
            normalised, _ = trainer.prepare_views(views, indices, 0)
            trainer.train_step(normalised)
        return 'none'
    except RuntimeError as err:
        return str(err).strip().splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode(0)


def fp16_sync_row(beton, workdir, args, device):
    if device.type != 'cuda' or 'fp16_cl' not in args.modes:
        return None
    trainer = make_trainer(beton, os.path.join(workdir, 'sync_fp16'), args.archs[0],
                           'fp16_cl', args)
    return sync_check(trainer, device)


def loader_row(beton, variant, workdir, args, device, mode):
    """``Trainer.fit`` of ``variant`` on ``beton``, then the same loader alone."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run_dir = os.path.join(workdir, f'loader_{variant}')
    trainer = make_trainer(beton, run_dir, args.archs[0], mode, args, placement='auto',
                           extra=['--logging.log_every=1', '--train.epochs=1000',
                                  '--train.checkpoint_every=1000', f'--train.variant={variant}'])
    per_epoch = len(trainer.loader)
    if per_epoch < 1:
        raise UserError(f'{beton}: fewer samples than one batch of {args.batch_size}')
    epochs = 1 + -(-args.steps // per_epoch)
    trainer.fit(stop_after=epochs)
    events = EventAccumulator(run_dir)
    events.Reload()
    # step s (1-based) is epoch (s - 1) // per_epoch; the first epoch compiles the pipeline
    rates = {e.step: e.value for e in events.Scalars('train/pairs_per_s')}
    waits = {e.step: e.value for e in events.Scalars('train/data_wait_fraction')}
    after_first = [step for step in sorted(rates) if step > per_epoch]
    steady = [step for step in after_first if (step - 1) % per_epoch] or after_first
    return {'variant': variant, 'beton': os.path.basename(beton), 'arch': args.archs[0],
            'mode': mode, 'placement': trainer.placement, 'workers': args.workers,
            'steps_per_epoch': per_epoch, 'steps': len(after_first),
            'pairs_per_s': statistics.median(rates[step] for step in steady),
            'data_wait_fraction': statistics.median(waits[step] for step in steady),
            'data_wait_with_epoch_starts': statistics.mean(waits[step] for step in after_first),
            'loader_only_pairs_per_s': loader_only_rate(trainer.loader)}


def loader_only_rate(loader):
    """Pairs/s of the loader's second epoch, nothing trained (the first compiles)."""
    for epoch in range(2):
        loader.set_epoch(epoch)
        pairs, start = 0, time.perf_counter()
        for views, _, _ in loader:
            pairs += views.shape[0]
    return pairs / (time.perf_counter() - start)


def supervised_row(arch, mode, args, device):
    """The same backbone, supervised: cross-entropy on random labels, SGD, same batch."""
    import torchvision
    from torch.nn.functional import cross_entropy

    from fastssl.device import resolve_precision
    label, precision, channels_last, _ = MODES[mode]
    release(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = getattr(torchvision.models, arch)().to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device=device
                         ).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, (args.batch_size,), device=device)
    dtype = resolve_precision(precision, device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    timed(step, args.warmup, device)
    seconds = timed(step, args.steps, device)
    return {'arch': arch, 'mode': mode, 'label': label,
            'images_per_s': args.batch_size * args.steps / seconds,
            'ms_per_step': 1000 * seconds / args.steps}


def supervised_rows(args, device):
    rows = []
    for arch in args.archs:
        for mode in (m for m in SUPERVISED_MODES if m in args.modes):
            rows.append(supervised_row(arch, mode, args, device))
            print(f"  {arch} supervised {rows[-1]['label']}: "
                  f"{rows[-1]['images_per_s']:.1f} images/s", flush=True)
    return rows


def profile_steps(beton, workdir, args, device, out):
    """torch.profiler's top kernels by device time over 3 steps of the first model."""
    from torch.profiler import ProfilerActivity, profile
    gpu = device.type == 'cuda'
    mode = 'bf16_cl' if gpu else 'fp32'
    trainer = make_trainer(beton, os.path.join(workdir, 'profile'), args.archs[0], mode, args)
    views = synthetic_views(trainer, args.batch_size, args.resolution)
    timed(lambda: trainer.train_step(views), max(1, args.warmup), device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        timed(lambda: trainer.train_step(views), 3, device)
    table = prof.key_averages().table(
        sort_by='self_device_time_total' if gpu else 'self_cpu_time_total', row_limit=25)
    with open(out, 'w', encoding='utf-8') as handle:
        handle.write(f'{args.archs[0]} {MODES[mode][0]}, batch {args.batch_size}, '
                     f'{args.resolution} px, 3 steps\n{table}\n')
    return out


def largest_batch(beton, workdir, args, device):
    """Largest multiple of 8 that trains two bf16_cl steps of the first model (CUDA only)."""
    if device.type != 'cuda':
        return None
    trainer = make_trainer(beton, os.path.join(workdir, 'memory'), args.archs[0], 'bf16_cl',
                           args)

    def fits(batch):
        release(device)
        try:
            views = synthetic_views(trainer, batch, args.resolution)
            for _ in range(2):
                trainer.train_step(views)
            synchronize(device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            views = None
            trainer.optimizer.zero_grad(set_to_none=True)
            release(device)

    good, bad = 0, 64
    while bad <= 1 << 16 and fits(bad):
        good, bad = bad, bad * 2
    while bad - good > 8:
        middle = (good + bad) // 16 * 8
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


# ---------------------------------------------------------------------------- report

def fmt(value, spec, missing='n/a'):
    return missing if value is None else format(value, spec)


def print_report(info, config, result):
    print()
    print_machine(info)
    print(f'config: {config}')
    print('\n(s) synthetic device-resident input, Trainer.train_step')
    print(f"{'model':<9} {'mode':<38} {'pairs/s':>9} {'ms/step':>9} {'GFLOP/pair':>10} "
          f"{'TFLOP/s':>8} {'of peak':>8} {'mem GiB':>8}")
    for row in result['synthetic']:
        if 'skipped' in row:
            print(f"{row['arch']:<9} {row['label']:<38} {'n/a (' + row['skipped'] + ')':>9}")
            continue
        peak = row.get('peak_fraction')
        share = 'n/a' if peak is None else f'{100 * peak:.1f}%'
        print(f"{row['arch']:<9} {row['label']:<38} {row['pairs_per_s']:9.1f} "
              f"{row['ms_per_step']:9.1f} {fmt(row.get('gflops_per_pair'), '10.1f'):>10} "
              f"{fmt(row.get('tflops'), '8.2f'):>8} {share:>8} "
              f"{fmt(row.get('peak_memory_gib'), '8.2f'):>8}")
    gpu = info['gpu'] is not None and config['device'] == 'cuda'
    print('\n(c) supervised ceiling: same backbone, cross-entropy + SGD, same batch')
    for row in result['supervised']:
        print(f"{row['arch']:<9} {'supervised, ' + row['label']:<38} "
              f"{row['images_per_s']:9.1f} images/s "
              f"{row['ms_per_step']:9.1f} ms/step")
    print()
    for row in result['ratios']:
        target = (f"target >= {row['target']:.1f}  {'PASS' if row['pass'] else 'MISS'}"
                  if row['target'] is not None else '(target applies to a GPU)')
        print(f"{row['label']:<52} {row['value']:6.2f}x  {target}")
    pre = result['preprocess']
    print(f"\n(g) GPU-side preprocessing ({pre['arch']}, {MODES[pre['mode']][0]}): "
          f"{pre['preprocess_ms']:.1f} ms vs train step {pre['step_ms']:.1f} ms -> "
          f"{100 * pre['fraction']:.1f} % of the step  "
          + (f"target < {100 * TARGETS['preprocess']:.0f} %  "
             f"{'PASS' if pre['fraction'] < TARGETS['preprocess'] else 'MISS'}" if gpu
             else '(on this CPU device; target applies to a GPU)'))
    print(f"\n(l) real FFCV loader + {MODES[result['loaders'][0]['mode']][0]}, "
          f"{result['loaders'][0]['arch']}, {result['loaders'][0]['workers']} loader threads, "
          f"augment {result['loaders'][0]['placement']}")
    print(f"{'variant':<8} {'beton':<18} {'steps':>5} {'pairs/s':>9} {'data wait':>10} "
          f"{'(w/ epoch starts)':>17} {'loader alone':>13}")
    for row in result['loaders']:
        verdict = ''
        if gpu and row['variant'] in DATA_WAIT_VARIANTS:
            verdict = (f"  target < {100 * TARGETS['data_wait']:.0f} %  "
                       f"{'PASS' if row['data_wait_fraction'] < TARGETS['data_wait'] else 'MISS'}")
        print(f"{row['variant']:<8} {row['beton'][:18]:<18} {row['steps']:>5} "
              f"{row['pairs_per_s']:9.1f} {100 * row['data_wait_fraction']:9.1f}% "
              f"{100 * row['data_wait_with_epoch_starts']:16.1f}% "
              f"{row['loader_only_pairs_per_s']:13.1f}{verdict}")
    for need in result['loader_needs']:
        print(f"    {need['arch']} ({MODES[need['mode']][0]}) trains {need['pairs_per_s']:.0f} "
              f"pairs/s; the mocov2 loader gives {need['loader_pairs_per_s_per_thread']:.0f} "
              f"pairs/s per thread: keeping up needs ~{need['threads_needed']:.1f} threads")
    print(f"(m) largest batch that fits ({config['archs'][0]}, channels-last + bf16): "
          f"{fmt(result['largest_batch'], 'd', 'n/a (no GPU)')}")
    print(f"(y) host-device syncs in prepare_views + train_step: "
          f"bf16_cl: {fmt(pre['sync'], 's', 'n/a (no GPU)')}; "
          f"fp16_cl: {fmt(result['fp16_sync'], 's', 'n/a (no GPU)')}")


def ratio_rows(synthetic, supervised, gpu):
    rates = {(r['arch'], r['mode']): r['pairs_per_s'] for r in synthetic if 'pairs_per_s' in r}
    rows = []

    def add(label, ratio, value, target):
        target = target if gpu else None
        rows.append({'label': label, 'ratio': ratio, 'value': value, 'target': target,
                     'pass': None if target is None else value >= target})

    for arch in dict.fromkeys(r['arch'] for r in synthetic):
        for num, target in (('bf16_cl', TARGETS['bf16_speedup']), ('fp16_cl', None),
                            ('bf16_cl_compile', None)):
            if (arch, num) in rates and (arch, 'fp32') in rates:
                add(f'{arch}: {MODES[num][0]} / fp32 NCHW', f'{arch}:{num}/fp32',
                    rates[arch, num] / rates[arch, 'fp32'], target)
    for row in supervised:
        arch, mode = row['arch'], row['mode']
        if (arch, mode) in rates:
            add(f'{arch}: MoCo pairs/s / ({PAIR_PER_IMAGE} x supervised images/s), '
                f'{MODES[mode][0]}', f'{arch}:{mode}/supervised',
                rates[arch, mode] / (PAIR_PER_IMAGE * row['images_per_s']),
                TARGETS['vs_supervised'] if arch == 'resnet50' else None)
    return rows


def loader_needs(synthetic, loaders, workers):
    """Threads the mocov2 loader needs to feed each model at its synthetic rate."""
    mocov2 = [row for row in loaders if row['variant'] == 'mocov2']
    if not mocov2:
        return []
    per_thread = mocov2[0]['loader_only_pairs_per_s'] / workers
    return [{'arch': r['arch'], 'mode': r['mode'], 'pairs_per_s': r['pairs_per_s'],
             'loader_pairs_per_s_per_thread': per_thread,
             'threads_needed': r['pairs_per_s'] / per_thread}
            for r in synthetic if r['mode'] == mocov2[0]['mode'] and 'pairs_per_s' in r]


# ---------------------------------------------------------------------------- main

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
    parser.add_argument('--workers', type=int, help='FFCV loader threads (default: all cores)')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')
    parser.add_argument('--loader-betons', nargs='+', default=[], metavar='VARIANT=PATH',
                        help='more end-to-end loader runs, e.g. fti=pairs.beton fti_rt=pairs.beton')
    parser.add_argument('--profile', metavar='OUT', help="also write torch.profiler's top "
                        "kernels of the first model's step to OUT")
    add_output_options(parser, 'CPU smoke run for tests: ResNet-18 at 32 px, batch 8, 2 steps, '
                       'fp32 and bf16_cl, 32 samples, 1 loader thread')
    return parser


def resolve(args):
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available()
                          else 'cpu' if args.device == 'auto' else args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError(f'--device {args.device}: CUDA is not available')
    apply_preset(args, QUICK if args.quick else GPU_DEFAULTS if device.type == 'cuda'
                 else CPU_DEFAULTS)
    if args.workers is None:
        args.workers = os.cpu_count() or 1
    require_at_least(args, ('resolution', 'batch_size', 'steps', 'warmup', 'samples', 'workers'))
    if args.batch_size % 8:
        raise UserError("--batch-size must be a multiple of 8 (split-BN's 8 groups)")
    if args.samples < 2 * args.batch_size:
        raise UserError(f'--samples {args.samples} must be at least twice --batch-size '
                        f'{args.batch_size} (the loader benchmark needs two steps)')
    args.loader_betons = [parse_loader_beton(item) for item in args.loader_betons]
    args.device = device.type
    return args, device


def parse_loader_beton(item):
    from fastssl.variants import VARIANTS
    variant, _, path = item.partition('=')
    if variant not in VARIANTS or not path:
        raise UserError(f"--loader-betons {item!r}: expected VARIANT=PATH with VARIANT one of "
                        f"{', '.join(VARIANTS)}")
    if not os.path.isfile(path):
        raise UserError(f'--loader-betons {variant}: no such file: {path}')
    return variant, path


def run(args, device, workdir):
    info = machine_info()
    src = os.path.join(workdir, 'jpeg')
    n_photos = make_jpegs(src, args.samples)
    beton = os.path.join(workdir, 'data.beton')
    build_beton(src, beton, 400, args.workers)
    print(f'wrote {beton}: {args.samples} JPEGs (~400 px) from {n_photos} package photos',
          flush=True)
    gpu = device.type == 'cuda'
    loader_mode = 'bf16_cl' if gpu else 'fp32'
    result = {'synthetic': synthetic_rows(beton, workdir, args, device)}
    result['supervised'] = supervised_rows(args, device)
    result['ratios'] = ratio_rows(result['synthetic'], result['supervised'], gpu)
    result['preprocess'] = preprocess_row(beton, workdir, args, device, loader_mode)
    result['fp16_sync'] = fp16_sync_row(beton, workdir, args, device)
    result['loaders'] = [loader_row(path, variant, workdir, args, device, loader_mode)
                         for variant, path in [('mocov2', beton), *args.loader_betons]]
    result['loader_needs'] = loader_needs(result['synthetic'], result['loaders'],
                                          args.workers)
    result['largest_batch'] = largest_batch(beton, workdir, args, device)
    if args.profile:
        result['profile'] = profile_steps(beton, workdir, args, device, args.profile)
    config = {name: getattr(args, name) for name in (
        'archs', 'modes', 'resolution', 'batch_size', 'steps', 'warmup', 'samples', 'workers',
        'device', 'quick', 'loader_betons')}
    print_report(info, config, result)
    if args.json:
        write_results(args.json, {'machine': info, 'config': config, **result})


def main(argv=None):
    args, device = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-step-') as workdir:
        run(args, device, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main)
