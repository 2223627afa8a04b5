"""Method (g), the NVIDIA DALI baseline: DALI's CPU pipeline making MoCo v2 pairs from the same
JPEG files as the loader benchmark's other methods, and a standalone comparison against
fastssl's pair loader (a) crop+flip and (b) full CPU augment.

    python -m benchmarks.dali_baseline [--data DIR] [--samples 1000] [--resolution 224]
                                       [--batch-size 64] [--workers N] [--epochs 3]
                                       [--max-resolution PX] [--json OUT] [--quick]

DALI (``nvidia-dali-cuda120`` on PyPI, an optional install: ``make benchmark-deps`` or
``pip install -e '.[benchmark]'``) is what most fast SSL code uses for input (solo-learn's
default). Its CPU pipeline runs without a GPU (``device_id=None``, every operator
``device='cpu'``). Without DALI the standalone run prints why and exits 0 having timed
nothing, unless ``--json OUT`` asks for results: then it stops before anything runs with one
``error:`` line naming the package and ``make benchmark-deps``, exit status 2, and writes no
file (a script must not take a missing result for a finished run).

Entry points, for ``benchmarks.loader`` or any other benchmark (the rows keep
``benchmarks.loader``'s shape: ``Method`` objects with ``epoch()``, key, label and unit):

* ``dali_missing()``: None when DALI imports, else the reason (a string to print).
* ``dali_methods(samples, args, scale, seed)``: ``[Method('g_crop'), Method('g_full')]`` over
  ``samples`` (``[(path, label)]``, e.g. ``benchmarks.data.build_beton``'s list: exactly the
  files the ``.beton`` holds) at ``args.resolution``, ``args.batch_size`` and ``args.workers``;
  an empty list, with the reason printed, when DALI is not importable.
* ``DALI_METHODS`` (key, label, unit) and ``DALI_RATIOS`` ((a)/(g crop) >= 3, (b)/(g full)
  >= 10, in ``benchmarks.common.ratio_rows``' form), keyed on the loader benchmark's 'a', 'b'.
* ``dali_loader(samples, args, full, scale, seed)``: one pipeline as an iterable of batches,
  like ``benchmarks.torchvision_baseline.torchvision_loader``.

The pipeline, per batch: ``fn.readers.file`` over the file list (shuffled, labels read and
dropped), ``fn.decoders.image(device='cpu')`` to RGB (libjpeg-turbo), then two independent
views of the one decoded image (decode once, as fastssl's loader), each:
``fn.random_resized_crop(size=R, random_area=scale, random_aspect_ratio=(3/4, 4/3))``
(DALI's default antialiased linear resize) and for the full augment, as MoCo v2's
``augmentation`` list in the torchvision baseline: ``fn.color_twist`` (brightness, contrast,
saturation ~ U(0.6, 1.4), hue ~ U(-36, 36) degrees, i.e. ColorJitter(0.4, 0.4, 0.4, 0.1)) with
probability 0.8, grayscale as ``fn.hsv(saturation=0)`` with probability 0.2, and
``fn.gaussian_blur`` (window k ~ 0.1 R, odd, as ours; sigma ~ U(0.1, 2)) with probability 0.5,
each applied per sample through DALI's conditionals (so skipped samples cost nothing); then
``fn.flip`` with a coin flip (p = 0.5). Output: uint8 HWC views at R x R, like (a) and (b).

Same for every method: the images, ``num_threads = --workers``, batch size, resolution, crop
scale, drop-last epochs of ``len(samples) // batch`` batches, one untimed warm-up epoch and
the median of timed epochs, round-robin. DALI's outputs are left in its own CPU buffers (not
copied into torch tensors, which its PyTorch iterator would do): that favours DALI. ``--quick``
is a smoke run (48 samples, 64 px, batch 16, 1 epoch, 1 worker); its numbers mean nothing.
"""
import os
import tempfile
import time

from benchmarks.common import (
    Method,
    add_output_options,
    benchmark_parser,
    check_json_folder,
    check_max_resolution,
    check_view_resolution,
    machine_info,
    print_machine,
    print_ratios,
    print_table,
    ratio_rows,
    write_results,
)
from benchmarks.data import (
    CROP_SCALE,
    SEED,
    add_jpeg_options,
    baseline_samples,
    build_beton,
    make_jpegs,
    resolve_jpeg_options,
)
from fastssl_common.errors import UserError, run_cli

RATIO = (3 / 4, 4 / 3)
HUE_DEGREES = 0.1 * 360    # ColorJitter(hue=0.1) is a tenth of the hue circle
QUICK = dict(samples=48, resolution=64, batch_size=16, epochs=1, workers=1)
DEFAULTS = dict(samples=1000, resolution=224, batch_size=64, epochs=3)
DALI_METHODS = [('g_crop', '(g) NVIDIA DALI CPU pipeline, crop+flip', 'pairs/s'),
                ('g_full', '(g) NVIDIA DALI CPU pipeline, full MoCo v2 augment', 'pairs/s')]
DALI_RATIOS = [('a', 'g_crop', '(a)/(g crop)  fastssl crop+flip vs DALI CPU crop+flip', 3.0),
               ('b', 'g_full', '(b)/(g full)  fastssl full augment vs DALI CPU full augment', 10.0)]
FASTSSL_METHODS = [('a', '(a) fastssl pair loader, crop+flip (decode once)', 'pairs/s'),
                   ('b', '(b) fastssl pair loader, full MoCo v2 CPU augment', 'pairs/s')]


def dali_missing():
    """None if DALI's Python package imports, else why not (one line)."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception as err:   # ImportError, or a broken native library underneath
        return (f'NVIDIA DALI is not importable ({type(err).__name__}: {err}); install it with '
                f"'make benchmark-deps' or pip install nvidia-dali-cuda120")
    return None


def moco_view(image, resolution, full, scale):
    """One MoCo v2 view of the decoded ``image`` (DALI graph nodes), torchvision's order."""
    from nvidia.dali import fn, types

    from loaders.photometric_params import blur_kernel_size

    view = fn.random_resized_crop(image, size=(resolution, resolution), random_area=scale,
                                  random_aspect_ratio=RATIO)
    if full:
        # Per-sample conditionals (pipeline_def(enable_conditionals=True)): each op runs only
        # on the samples whose coin says so, like torchvision's RandomApply
        if fn.random.coin_flip(probability=0.8):
            view = fn.color_twist(view, brightness=fn.random.uniform(range=(0.6, 1.4)),
                                  contrast=fn.random.uniform(range=(0.6, 1.4)),
                                  saturation=fn.random.uniform(range=(0.6, 1.4)),
                                  hue=fn.random.uniform(range=(-HUE_DEGREES, HUE_DEGREES)))
        if fn.random.coin_flip(probability=0.2):
            view = fn.hsv(view, saturation=0.0, dtype=types.UINT8)
        if fn.random.coin_flip(probability=0.5):
            view = fn.gaussian_blur(view, window_size=blur_kernel_size(resolution, resolution),
                                    sigma=fn.random.uniform(range=(0.1, 2.0)))
    return fn.flip(view, horizontal=fn.random.coin_flip(probability=0.5))


class DaliPairs:
    """Iterable of DALI batches (a tuple of two ``TensorListCPU`` views): one epoch is
    ``len(samples) // batch_size`` runs of the pipeline (drop-last, like the other methods)."""

    def __init__(self, pipe, batches, batch_size):
        self.pipe, self.batches, self.batch_size = pipe, batches, batch_size

    def __iter__(self):
        for _ in range(self.batches):
            yield self.pipe.run()


def dali_loader(samples, args, full, scale=CROP_SCALE, seed=SEED):
    """The DALI CPU pipeline of MoCo v2 pairs over ``samples`` ([(path, label)]) at
    ``args.resolution``, ``args.batch_size``, ``num_threads = args.workers``; ``full``: the
    whole augment, else crop+flip. Built on the first call (DALI starts its threads then)."""
    from nvidia.dali import fn, pipeline_def, types

    paths = [path for path, _ in samples]
    labels = [int(label) for _, label in samples]

    # Synchronous: each run() computes its batch. DALI's default executor computes the next
    # batch ahead, in the background: an epoch's first batch came free (an epoch of one batch
    # timed nothing) and its work ran during the other methods' timed epochs.
    @pipeline_def(batch_size=args.batch_size, num_threads=args.workers, device_id=None,
                  seed=seed, enable_conditionals=full, exec_async=False, exec_pipelined=False)
    def pairs():
        jpegs, _ = fn.readers.file(files=paths, labels=labels, random_shuffle=True,
                                   name='reader')
        image = fn.decoders.image(jpegs, device='cpu', output_type=types.RGB)
        return (moco_view(image, args.resolution, full, scale),
                moco_view(image, args.resolution, full, scale))

    pipe = pairs()
    pipe.build()
    return DaliPairs(pipe, len(samples) // args.batch_size, args.batch_size)


def dali_pairs(batch):
    return len(batch[0])


def dali_methods(samples, args, scale=CROP_SCALE, seed=SEED):
    """Methods (g crop) and (g full), or [] (the reason printed) when DALI is absent."""
    missing = dali_missing()
    if missing:
        print(f'skipping (g): {missing}', flush=True)
        return []
    if len(samples) < args.batch_size:
        raise UserError(f'DALI: {len(samples)} samples, fewer than --batch-size '
                        f'{args.batch_size}')
    full = {'g_crop': False, 'g_full': True}
    return [Method(key, label, unit,
                   lambda full=full[key]: dali_loader(samples, args, full, scale, seed),
                   dali_pairs)
            for key, label, unit in DALI_METHODS]


# ---------------------------------------------------------------------------- standalone

def fastssl_methods(beton, args):
    """(a) and (b) as ``benchmarks.loader`` builds them (same loader, options and seed)."""
    from loaders.pair_loader import MultiViewLoader
    from loaders.photometric_params import make_strengths

    def loader(augment):
        return MultiViewLoader(beton, args.batch_size, args.resolution, num_workers=args.workers,
                               seed=SEED, order='random', scale=CROP_SCALE,
                               cpu_photometric=make_strengths() if augment else None,
                               drop_last=True)

    def pairs(batch):
        return int(batch[0].shape[0])

    augment = {'a': False, 'b': True}
    return [Method(key, label, unit, lambda augment=augment[key]: loader(augment), pairs)
            for key, label, unit in FASTSSL_METHODS]


def build_parser():
    parser = benchmark_parser(
        'dali_baseline', 'NVIDIA DALI CPU pipeline (g) vs fastssl pair loader (a) crop+flip and '
        '(b) full augment on the same JPEGs (see the module docstring for the choices).')
    add_jpeg_options(parser, DEFAULTS, 'FFCV threads and DALI num_threads')
    add_output_options(parser, f"smoke run for tests: {QUICK['samples']} samples, 64 px, "
                       'batch 16, 1 epoch, 1 worker')
    return parser


def resolve(args):
    resolve_jpeg_options(args, QUICK if args.quick else DEFAULTS)
    check_view_resolution(args)
    check_max_resolution(args)
    check_json_folder(args.json)
    missing = dali_missing() if args.json else None
    if missing:     # a script that asked for results must not take silence for success
        raise UserError(f'--json {args.json}: no results to write: {missing}')
    return args


def run(args, workdir):
    missing = dali_missing()
    if missing:       # before any image is made: the comparison needs both sides
        print(f'skipping the DALI baseline: {missing}', flush=True)
        return None
    info = machine_info()
    src = args.data
    if not src:
        src = os.path.join(workdir, 'jpeg')
        make_jpegs(src, args.samples)
    beton = os.path.join(workdir, 'data.beton')
    samples = build_beton(src, beton, args.max_resolution, args.workers)
    print(f'{len(samples)} JPEGs from {args.data or "package photos"} in {beton}', flush=True)
    if len(samples) < args.batch_size:
        raise UserError(f'{len(samples)} images, fewer than --batch-size {args.batch_size}')
    methods = fastssl_methods(beton, args) + dali_methods(
        baseline_samples(args, beton, samples, workdir), args)
    for m in methods:
        t0 = time.perf_counter()
        m.epoch()
        print(f'warm-up {m.label}: {time.perf_counter() - t0:.1f}s', flush=True)
    for epoch in range(args.epochs):
        for m in methods:
            m.timed_epoch()
        print(f'timed epoch {epoch + 1}/{args.epochs} done', flush=True)
    for m in methods:
        m.close()
    ratios = ratio_rows(methods, DALI_RATIOS)
    from nvidia.dali import __version__ as dali_version
    config = {'samples': len(samples), 'data': args.data or 'generated from package photos',
              'resolution': args.resolution, 'batch_size': args.batch_size,
              'workers': args.workers, 'epochs': args.epochs,
              'max_resolution': args.max_resolution, 'dali': dali_version, 'quick': args.quick}
    print()
    print_machine(info)
    print(f"config: {config['samples']} JPEGs ({config['data']}), DALI {dali_version} CPU "
          f"pipeline (device_id=None), resolution {args.resolution}, batch {args.batch_size}, "
          f"{args.workers} threads, {args.epochs} timed epoch(s) after 1 warm-up")
    print()
    print_table(methods)
    print()
    print_ratios(ratios)
    if args.json:
        write_results(args.json, {'machine': info, 'config': config,
                                  'methods': {m.key: m.as_json() for m in methods},
                                  'ratios': ratios})
    return ratios


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-dali-bench-') as workdir:
        run(args, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
