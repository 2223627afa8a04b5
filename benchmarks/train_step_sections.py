"""The measurements of ``benchmarks.train_step`` (its docstring describes each section): trainers
built like ``train.py`` builds them, then (s) synthetic device-resident steps with their FLOPs,
(c) the supervised ceiling, (g) GPU-side preprocessing, (l) the real loader end to end,
(m) the largest batch, (y) host-device syncs, and the profiler's top kernels.
"""
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import peak_tflops, release, synchronize, timed
from fastssl.config import load_settings
from fastssl.normalize import normalize
from fastssl.trainer import Trainer
from fastssl_common.atomic import atomic_path
from fastssl_common.errors import UserError

# key: (label, train.precision, train.channels_last, train.compile)
MODES = {
    'fp32': ('fp32 NCHW', 'fp32', False, False),
    'bf16_cl': ('channels-last + bf16', 'bf16', True, False),
    'fp16_cl': ('channels-last + fp16 + GradScaler', 'fp16', True, False),
    'bf16_cl_compile': ('channels-last + bf16 + torch.compile', 'bf16', True, True),
}
SUPERVISED_MODES = ('fp32', 'bf16_cl')


# ---------------------------------------------------------------------------- trainers

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
    """torch.profiler's top kernels by device time over 3 steps of the first model, and how
    much of those steps' wall time the kernels fill."""
    from torch.profiler import ProfilerActivity, profile
    gpu = device.type == 'cuda'
    mode = 'bf16_cl' if gpu else 'fp32'
    trainer = make_trainer(beton, os.path.join(workdir, 'profile'), args.archs[0], mode, args)
    views = synthetic_views(trainer, args.batch_size, args.resolution)
    timed(lambda: trainer.train_step(views), max(1, args.warmup), device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        seconds = timed(lambda: trainer.train_step(views), 3, device)
    events = prof.key_averages()
    result = {'path': out, 'wall_ms': 1000 * seconds, 'kernel_ms': None, 'kernel_share': None}
    busy = ''
    if gpu:
        # kernels' time against the wall clock: well below 100 %, the host does not keep the
        # GPU fed (launches, Python), and the kernel table below is not what bounds the step
        result['kernel_ms'] = sum(e.self_device_time_total for e in events) / 1000
        result['kernel_share'] = result['kernel_ms'] / result['wall_ms']
        busy = (f"; kernels ran {result['kernel_ms']:.1f} ms of them "
                f"({100 * result['kernel_share']:.0f} %)")
    table = events.table(sort_by='self_device_time_total' if gpu else 'self_cpu_time_total',
                         row_limit=25)
    with atomic_path(out) as tmp, open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(f'{args.archs[0]} {MODES[mode][0]}, batch {args.batch_size}, '
                     f'{args.resolution} px: 3 steps in {result["wall_ms"]:.1f} ms under the '
                     f'profiler{busy}\n{table}\n')
    return result


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
