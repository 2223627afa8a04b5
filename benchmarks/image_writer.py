"""The image writer against FFCV's own and against itself before, in one run: images/s of
``write_images``, of FFCV's ``DatasetWriter`` with the same worker processes, of the writer
before it wrote in order, and of a sharded write and its merge; and whether each writes the
same bytes every time.

    python -m benchmarks.image_writer [--data DIR | --samples 2000] [--max-resolution 256]
                                      [--workers N] [--shards 4] [--repeats 3] [--json OUT]
                                      [--quick]

**Material.** ``--samples`` JPEGs made from the photographs shipped with scikit-image and
scikit-learn (360–400 px, :func:`benchmarks.data.make_jpegs`), or the images of ``--data``.

**Methods.** Both store JPEG, quality 90, longest side capped at ``--max-resolution``, with
``--workers`` processes:

- (i0) FFCV's ``DatasetWriter.from_indexed_dataset`` over a dataset that decodes each image
  with Pillow (:func:`fastssl_common.images.load_rgb`): what ffcv-imagenet's
  ``write_imagenet.py`` runs. Its processes each fill their own pages as they finish. It
  checks nothing, hashes nothing and writes no sidecar.
- (i1) ``write_images`` from call to return: every image decoded once in the pool (the check
  that it is readable) and encoded there; the results spooled in sample order, copied into
  the file by one writer in this process, the file hashed, the sidecar written.
- (i2) the writer before (i1): every image decoded in the pool to check it, then (i0).
- (i3) ``write_images --shard I/N`` for each of ``--shards`` shards, one after another (on a
  cluster they run at the same time), then ``merge_betons`` joining them; the merge alone is
  timed too (images/s and MB/s of ``.beton``). The merged file must be (i1)'s, byte for byte.

One untimed warm-up of each, then ``--repeats`` timed rounds, the methods alternating (their
order rotated every round); median images/s. Target: (i1)/(i2) >= 1, writing in order is no
slower than before; (i1)/(i0), what checks, spool, hashes and sidecar cost against FFCV's
bare writer, and (i3)/(i1), what sharding costs in all (each shard lists SRC, and the merge
copies and hashes the file again), have none. **Repeatable** says whether every run of a
method wrote the same bytes.

``--quick`` is a smoke run for tests (64 images, 1 repeat, no warm-up, 2 workers, 2 shards):
its numbers mean nothing.
"""
import hashlib
import math
import os
import tempfile
import time

from PIL import Image

from benchmarks.common import (
    Timing,
    add_output_options,
    apply_preset,
    benchmark_parser,
    check_json_folder,
    check_max_resolution,
    check_writer_processes,
    machine_info,
    print_machine,
    print_table,
    require_at_least,
    write_results,
)
from benchmarks.data import (
    JPEG_QUALITY,
    add_image_source_options,
    check_data_folder,
    check_generated_space,
    make_jpegs,
)
from fastssl_common.errors import UserError, run_cli
from fastssl_common.images import load_rgb
from writers.image_sources import find_images, map_in_order
from writers.merge_betons import merge_betons
from writers.write_images import write_images
from writers.writer_common import page_size_for, stored_size

DEFAULTS = dict(samples=2000, max_resolution=256, repeats=3, warmup=1, shards=4)
QUICK = dict(samples=64, max_resolution=256, repeats=1, warmup=0, workers=2, shards=2)
TARGET = 1.0
METHODS = [('ffcv', "(i0) FFCV's DatasetWriter, its processes fill pages as they finish"),
           ('ours', '(i1) write_images: decoded once, encoded by the pool, written in order'),
           ('before', '(i2) the writer before: images decoded to check them, then (i0)'),
           ('sharded', '(i3) --shards shards of write_images, one after another, then merged')]
MERGE = ('merge', '      of which the merge of the shards')


class Photos:
    """FFCV's indexed dataset over ``samples``: (Pillow-decoded RGB array, label)."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        return load_rgb(sample.path), sample.label


def write_with_ffcv(src, out, args):
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    fields = {'image': RGBImageField(write_mode='jpg', jpeg_quality=JPEG_QUALITY,
                                     max_resolution=args.max_resolution or None),
              'label': IntField()}
    writer = DatasetWriter(out, fields, page_size=args.page_size, num_workers=args.workers)
    writer.from_indexed_dataset(Photos(find_images(src).samples))


def write_ours(src, out, args, shard=None):
    write_images(src, out, max_resolution=args.max_resolution, jpeg_quality=JPEG_QUALITY,
                 workers=args.workers, shard=shard, progress=False)


def write_sharded(src, out, args):
    """(i3): the shards, then their merge; the merge's seconds."""
    shards = [f'{out[:-len(".beton")]}-{index}.beton' for index in range(args.shards)]
    for index, shard in enumerate(shards):
        write_ours(src, shard, args, (index, args.shards))
    start = time.perf_counter()
    merge_betons(out, shards, progress=False)
    seconds = time.perf_counter() - start
    for shard in shards:
        os.remove(shard)
        os.remove(shard + '.json')
    return seconds


def check_shards(shards, count):
    if shards > count:
        raise UserError(f'--shards {shards} is more than the {count} images')


def check_readable(src, workdir, args):
    """UserError naming the first image of ``--data`` that ``write_images`` would skip: (i1)
    would leave it out while FFCV's writer in (i0) and (i2) stops at it with a traceback, so
    the methods would not write the same images."""
    out = os.path.join(workdir, 'check.beton')
    summary = write_images(src, out, max_resolution=args.max_resolution,
                           jpeg_quality=JPEG_QUALITY, workers=args.workers, progress=False)
    os.remove(out)
    os.remove(summary['sidecar'])
    skipped = summary['skipped']
    if skipped:
        raise UserError(f"--data {src}: {len(skipped)} image(s) that write_images skips "
                        f"(first: {skipped[0]['path']}: {skipped[0]['reason']}); FFCV's writer "
                        'would stop at them: remove them, or give a folder without them')


def decoded_shape(path):
    return load_rgb(path).shape


def write_checked_with_ffcv(src, out, args):
    paths = [sample.path for sample in find_images(src).samples]
    with map_in_order(decoded_shape, paths, args.workers) as shapes:
        for _ in shapes:
            pass
    write_with_ffcv(src, out, args)


WRITERS = {'ffcv': write_with_ffcv, 'ours': write_ours, 'before': write_checked_with_ffcv,
           'sharded': write_sharded}


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def page_size(src, max_resolution):
    """A page for the largest image stored raw, as ``write_images`` sizes its pages."""
    largest = 0
    for sample in find_images(src).samples:
        with Image.open(sample.path) as image:
            width, height = image.size
        largest = max(largest, math.prod(stored_size(height, width, max_resolution)) * 3)
    return page_size_for(largest)


def run(key, src, workdir, args):
    """One write by method ``key``: (seconds, sha256 of the file, size in bytes, what the
    method returned: the merge's seconds for (i3))."""
    out = os.path.join(workdir, f'{key}.beton')
    start = time.perf_counter()
    returned = WRITERS[key](src, out, args)
    seconds = time.perf_counter() - start
    written, size = digest(out), os.path.getsize(out)
    for path in (out, out + '.json'):
        if os.path.exists(path):
            os.remove(path)
    return seconds, written, size, returned


def measure(src, workdir, args, count):
    """Alternating timed rounds: the Timings (the merge's last), each method's set of file
    digests, and the merged file's size in bytes."""
    timings = {key: Timing(key, label, 'img/s') for key, label in [*METHODS, MERGE]}
    digests = {key: set() for key, _ in METHODS}
    for key, _ in METHODS * args.warmup:
        digests[key].add(run(key, src, workdir, args)[1])
    for round_number in range(args.repeats):
        shift = round_number % len(METHODS)
        order = METHODS[shift:] + METHODS[:shift]
        for key, _ in order:
            seconds, written, size, merge_seconds = run(key, src, workdir, args)
            timings[key].add(count, seconds)
            digests[key].add(written)
            if merge_seconds is not None:
                timings['merge'].add(count, merge_seconds)
                merged_size = size
    return list(timings.values()), digests, merged_size


def build_parser():
    parser = benchmark_parser('image_writer', (
        "write_images against FFCV's own DatasetWriter and against the writer before, in one "
        'run: images/s with the same workers, and whether each writes the same bytes every '
        'time; see the module docstring.'))
    add_image_source_options(parser, DEFAULTS['samples'])
    parser.add_argument('--max-resolution', type=int, default=None,
                        help=f"longest stored side, 0 = none (default "
                        f"{DEFAULTS['max_resolution']})")
    parser.add_argument('--workers', type=int, default=None,
                        help='writer processes of every method (default: usable CPUs)')
    parser.add_argument('--shards', type=int, default=None,
                        help=f"shards of (i3) (default {DEFAULTS['shards']})")
    parser.add_argument('--repeats', type=int, default=None,
                        help=f"timed rounds after one warm-up (default {DEFAULTS['repeats']})")
    add_output_options(parser, 'smoke run for tests: 64 images, 1 repeat, no warm-up, 2 workers')
    return parser


def resolve(args):
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    check_writer_processes(args)
    require_at_least(args, ('samples', 'repeats', 'shards'))
    if args.max_resolution < 0:
        raise UserError('--max-resolution must be >= 0')
    check_max_resolution(args)
    check_data_folder(args)
    if not args.data:
        check_shards(args.shards, args.samples)
        # the JPEGs, and (i3)'s shards beside their merge
        check_generated_space(args.samples, copies=3)
    check_json_folder(args.json)
    return args


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix='image-writer-bench-') as workdir:
        src = args.data
        if src is None:
            src = os.path.join(workdir, 'jpegs')
            make_jpegs(src, args.samples)
        count = len(find_images(src).samples)
        if args.data:
            check_shards(args.shards, count)   # before check_readable writes the folder once
            check_readable(src, workdir, args)
        args.page_size = page_size(src, args.max_resolution)
        timings, digests, merged_size = measure(src, workdir, args, count)

    print()
    print_machine(info)
    print()
    print(f'writing {count} images of {"--data " + args.data if args.data else "generated JPEGs"}'
          f' (jpg, quality {JPEG_QUALITY}, --max-resolution {args.max_resolution}), '
          f'{args.workers} workers, {args.shards} shards in (i3), {args.repeats} timed round(s) '
          f'after {args.warmup} warm-up, alternating')
    print_table(timings, runs='run seconds')
    rates = {t.key: t.median for t in timings}
    ratio = rates['ours'] / rates['before']
    print(f'(i1)/(i2)  write_images vs the writer before: {ratio:.2f}x  target >= '
          f"{TARGET:.1f}  {'PASS' if ratio >= TARGET else 'MISS'}")
    print(f"(i1)/(i0)  write_images vs FFCV's bare writer: {rates['ours'] / rates['ffcv']:.2f}x  "
          '(no target)')
    print(f"(i3)/(i1)  {args.shards} shards one after another and their merge vs one write: "
          f"{rates['sharded'] / rates['ours']:.2f}x  (no target)")
    merge_mb_s = rates['merge'] * merged_size / count / 1e6
    print(f"merge      {rates['merge']:.0f} img/s, {merge_mb_s:.0f} MB/s of .beton "
          f'({merged_size / 1e6:.1f} MB)')
    same = digests['sharded'] == digests['ours'] and len(digests['ours']) == 1
    print(f"(i3)       the merged file is (i1)'s, byte for byte: {'yes' if same else 'no'}")
    runs = args.warmup + args.repeats
    repeatable = {key: len(found) == 1 for key, found in digests.items()}
    for key, label in METHODS:
        print(f"{label.split(')')[0]})  the same bytes in all {runs} runs: "
              f"{'yes' if repeatable[key] else f'no ({len(digests[key])} different files)'}")
    if args.json:
        write_results(args.json, {
            'machine': info,
            'config': {'data': args.data, 'samples': count, 'max_resolution': args.max_resolution,
                       'workers': args.workers, 'shards': args.shards, 'repeats': args.repeats,
                       'warmup': args.warmup, 'quick': args.quick},
            'speed': {t.key: t.as_json(runs='run') for t in timings},
            'ratio_ours_before': ratio, 'target': TARGET, 'pass': ratio >= TARGET,
            'ratio_ours_ffcv': rates['ours'] / rates['ffcv'],
            'ratio_sharded_ours': rates['sharded'] / rates['ours'],
            'merge_mb_per_s': merge_mb_s, 'merged_is_ours': same,
            'repeatable': repeatable})
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
