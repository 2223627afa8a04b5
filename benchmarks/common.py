"""The harness every benchmark runs in (``python -m benchmarks.NAME``): its command line (one
``--quick`` smoke flag, ``--json OUT``, presets the explicit options override, the usual
checks), the machine and version lines, per-run timings with their median, the method and
ratio tables, and the JSON result file.

The benchmarks themselves decide what to time; their material comes from ``benchmarks.data``
and ``benchmarks.synthetic_video``.
"""
import json
import os
import platform
import resource
import statistics
import tempfile
import time

from fastssl_common.atomic import write_json
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError

MAX_RESULT_BYTES = 16 << 20     # a benchmark's JSON result is kilobytes; more is not one

# ---------------------------------------------------------------------------- command line

def benchmark_parser(name, description, **kwargs):
    """The parser of ``python -m benchmarks.NAME``: a usage error is one ``error:`` line and
    exit status 2 (through ``run_cli``), like every other error of the benchmark."""
    return ArgParser(prog=f'python -m benchmarks.{name}', description=description, **kwargs)


def add_output_options(parser, quick_help):
    """The options every benchmark ends with: ``--json OUT`` and the ``--quick`` smoke run."""
    parser.add_argument('--json', metavar='OUT', help='also write the results as JSON')
    parser.add_argument('--quick', action='store_true',
                        help=f'{quick_help} (explicit options still win; its numbers mean '
                        'nothing)')


def apply_preset(args, preset):
    """Every option of ``preset`` that the command line left unset (None) takes the preset's
    value: explicit options win over ``--quick`` and over the defaults alike."""
    filled = [name for name in preset if getattr(args, name, None) is None]
    for name in filled:
        setattr(args, name, preset[name])
    args.from_preset = frozenset(filled)    # for messages: a value the user did not give
    return args


def require_at_least(args, names, minimum=1):
    """UserError naming the first option in ``names`` that is below ``minimum``."""
    for name in names:
        if getattr(args, name) < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be at least {minimum}")


def check_memory(needed, what):
    """UserError when ``needed`` bytes are more than the memory this process may use:
    '``what`` would take N GB, more than ...'."""
    from loaders.batch_memory import usable_memory  # loaders imports ffcv: only when checked
    available = usable_memory()
    if available is not None and needed > available:
        raise UserError(f'{what} would take {needed / 1e9:.1f} GB, more than the '
                        f'{available / 1e9:.1f} GB of memory this process may use')


def check_output_file(path, option):
    """UserError unless ``option``'s ``path`` (None: not asked for) can be written: a name,
    not a folder or device, in an existing folder where a file can be created. Checked before
    anything is timed: a bad path found only when the results are written loses the run."""
    if path is None:
        return
    if not path:
        raise UserError(f'{option} needs a file name, got an empty one')
    if os.path.isdir(path):
        raise UserError(f'{option} {path} is a folder, not a file')
    if os.path.exists(path) and not os.path.isfile(path):
        # the atomic write would rename its temporary over it (a device, a pipe)
        raise UserError(f'{option} {path} exists and is not a regular file')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        why = 'is a file, not a folder' if os.path.exists(folder) else 'does not exist'
        raise UserError(f'{option} {path}: folder {folder} {why}')
    try:
        # a real file, not os.access: root passes any access check, a read-only mount does not
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f'{option} {path}: cannot create a file in folder {folder} '
                        f'({err.strerror})') from None


def check_json_folder(path):
    """:func:`check_output_file` for ``--json`` (the name the benchmarks have always used); a
    file already there must be an earlier result, which the run replaces: ``--json`` given an
    input's name (a video, a ``.beton``) replaced that input."""
    check_output_file(path, '--json')
    if path and os.path.isfile(path) and not _is_result(path):
        raise UserError(f'--json {path} exists and is not an earlier benchmark result: give '
                        f'another name, or remove it first')


def _is_result(path):
    """Whether ``path`` holds a benchmark's JSON result (an object with its ``machine``)."""
    if os.path.getsize(path) > MAX_RESULT_BYTES:      # not read whole: a video, a dataset
        return False
    try:
        with open(path, 'rb') as handle:
            doc = json.loads(handle.read())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and 'machine' in doc


def check_loader_threads(args):
    """``args.workers`` as FFCV loader threads (unset or 0: all cores), checked before anything
    runs: Numba refuses more threads than it started with (one per core) only once a loader
    starts, after the timed parts before it, and the baselines given as many would start that
    many processes."""
    from loaders.work_sharing import check_threads  # imports Numba: seconds, so not above

    args.workers = check_threads(args.workers or 0, '--workers')


def add_pair_writer_options(parser, videos_help, part, repeats_help):
    """The options of a benchmark that times ``write_video_pairs --proposals`` (``part``: which
    part of it writes, for the help): --videos, --gap, --proposals, --max-resolution (320),
    --max-frames, --workers, --repeats; :func:`check_pair_writer_options` checks them."""
    parser.add_argument('--videos', nargs='+', metavar='FILE', help=videos_help)
    parser.add_argument('--gap', type=int, default=4, help='pair gap K (default 4)')
    parser.add_argument('--proposals', type=int, default=8, help='--proposals N (default 8)')
    parser.add_argument('--max-resolution', type=int, default=320,
                        help='stored frame size cap (default 320)')
    parser.add_argument('--max-frames', type=int, default=None,
                        help=f'frames per video{part}, 0 = all (default all)')
    parser.add_argument('--workers', type=int, default=None,
                        help='writer processes (default: usable CPUs)')
    parser.add_argument('--repeats', type=int, default=None, help=repeats_help)


def check_pair_writer_options(args):
    """:func:`add_pair_writer_options`' options as the writer will check them (the videos
    aside), before anything is timed."""
    from writers.pair_options import DEFAULT_MAX_PROPOSALS

    check_writer_processes(args)
    require_at_least(args, ('gap', 'proposals', 'repeats'))
    if args.proposals > DEFAULT_MAX_PROPOSALS:
        raise UserError(f"--proposals must be at most {DEFAULT_MAX_PROPOSALS} (the writer's "
                        f'--max-proposals)')
    check_max_resolution(args)
    check_max_frames(args)


def check_writer_processes(args):
    """``args.workers`` as writer processes (unset: one per usable CPU), from 1 to the usable
    CPUs: the writers accept more, but in a benchmark processes beyond the cores only queue
    for them, and each holds a writer's memory (``--workers 999`` would start 999)."""
    from writers.writer_common import default_workers

    cores = default_workers()
    if args.workers is None:
        args.workers = cores
    elif 'workers' in getattr(args, 'from_preset', ()):
        args.workers = min(args.workers, cores)     # --quick's count, on a smaller machine
    require_at_least(args, ('workers',))
    if args.workers > cores:
        raise UserError(f'--workers {args.workers} is more than the {cores} CPUs this process '
                        'may use')


def check_max_resolution(args):
    """``--max-resolution`` as the writers will check it (0, or at least their minimum), here
    so that a bad value fails before anything is timed rather than at the first write."""
    from writers.writer_common import check_resolution

    check_resolution(args.max_resolution)


def check_max_frames(args):
    """``--max-frames`` (0: all) of the video benchmarks: a count that leaves pairs at
    ``--gap``. The writers' own message would name their option (``--max-frames-per-video``)
    or, for too few frames, a temporary copy of the video."""
    from fastssl_common.numbers import check_number

    check_number(args.max_frames, '--max-frames', 1, zero='no cap')
    if args.max_frames and args.max_frames <= args.gap:
        quick = args.quick and 'max_frames' in getattr(args, 'from_preset', ())
        preset = " (--quick's)" if quick else ''
        raise UserError(f'--max-frames {args.max_frames}{preset} leaves no pairs with --gap '
                        f'{args.gap}: it must be larger than the gap')


# Views are R x R x 3 bytes each, per view, per sample and per batch buffer: at 1024 px a batch
# of 64 four-view pairs is 0.8 GB per buffer, and larger views are beyond any SSL recipe timed
# here. The loaders set no limit of their own, so a typo fails when a buffer is allocated.
MAX_VIEW_RESOLUTION = 1024


def check_view_resolution(args, low=1):
    """``--resolution`` (the side of the views the loaders or the model produce) from ``low``
    to :data:`MAX_VIEW_RESOLUTION`."""
    if not low <= args.resolution <= MAX_VIEW_RESOLUTION:
        raise UserError(f'--resolution must be from {low} to {MAX_VIEW_RESOLUTION} px, got '
                        f'{args.resolution}')


def write_results(path, doc):
    """Write the result document as indented JSON (atomically) and say where."""
    write_json(path, doc)
    print(f'\nresults written to {path}')


# ---------------------------------------------------------------------------- machine

def distribution_version(name):
    """The installed distribution's version (``ffcv.__version__`` still says 0.0.3rc1)."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return '?'


def machine_info(extra=(), device=None):
    """CPU, CPU counts, load average (now), GPU (``device``'s where it is a CUDA device, else
    the first) and the versions of the libraries timed; ``extra`` adds the versions of
    ``'av'`` (PyAV) and ``'opencv'``."""
    import numba
    import torch
    import torchvision
    from PIL import Image

    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    timed = device if device is not None and device.type == 'cuda' else 0
    gpu = torch.cuda.get_device_name(timed) if torch.cuda.is_available() else None
    return {'cpu': cpu, 'cpu_count': os.cpu_count(), 'usable_cpus': usable,
            'load_average': load, 'gpu': gpu, 'python': platform.python_version(),
            'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'ffcv': distribution_version('ffcv'), 'numba': numba.__version__,
            'pillow': Image.__version__, **{name: extra_version(name) for name in extra}}


def extra_version(name):
    if name == 'av':
        import av
        return av.__version__
    if name == 'opencv':
        import cv2
        return cv2.__version__
    raise ValueError(f'no version source for {name!r}')


def print_machine(info, extra=()):
    """The ``machine:`` and ``versions:`` lines; ``extra`` names more ``info`` keys whose
    versions go at the end of the second line."""
    print(f"machine: {info['cpu']}, {info['cpu_count']} CPUs ({info['usable_cpus']} usable), "
          f"GPU: {info['gpu'] or 'none'}, load average at start: {info['load_average']}")
    more = ''.join(f', {name} {info[name]}' for name in extra)
    print(f"versions: python {info['python']}, torch {info['torch']}, torchvision "
          f"{info['torchvision']}, ffcv {info['ffcv']}, numba {info['numba']}, "
          f"pillow {info['pillow']}{more}")


# ---------------------------------------------------------------------------- device

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

def peak_tflops(device, precision):
    """The device's dense peak for ``precision`` ('fp32' or half), or None (CPU, unknown)."""
    import torch

    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for pattern, peaks in PEAK_TFLOPS:
        if pattern in name:
            return peaks['tf32' if precision == 'fp32' else 'half']
    return None


def synchronize(device):
    """Wait for the device's queued work (a no-op on a CPU)."""
    import torch

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


def release(device):
    """Free the device's cached memory and restart its peak-memory count (CUDA only)."""
    import torch

    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ---------------------------------------------------------------------------- timings

def cpu_seconds():
    """CPU time (user + system) of this process's threads and of its ended child processes:
    a writer's pool workers are joined before it returns."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timing:
    """The timed runs of one method: ``add(count, seconds)`` per run; ``median`` rate."""

    def __init__(self, key, label, unit):
        self.key, self.label, self.unit = key, label, unit
        self.rates, self.seconds = [], []

    def add(self, count, seconds):
        self.seconds.append(seconds)
        self.rates.append(count / seconds)

    @property
    def median(self):
        return statistics.median(self.rates)

    def as_json(self, runs='epoch'):
        """``label``, ``unit``, ``median``, ``per_<runs>`` rates, ``<runs>_seconds``."""
        return {'label': self.label, 'unit': self.unit, 'median': self.median,
                f'per_{runs}': self.rates, f'{runs}_seconds': self.seconds}


class Method(Timing):
    """One loader to time: ``epoch()`` iterates it once and returns the samples yielded."""

    def __init__(self, key, label, unit, make_iterable, count):
        super().__init__(key, label, unit)
        self.make_iterable = make_iterable
        self.count = count
        self.iterable = None

    def epoch(self):
        if self.iterable is None:
            self.iterable = self.make_iterable()
        yielded = 0
        start = time.perf_counter()
        for batch in self.iterable:    # always to the end: that closes FFCV's iterator
            yielded += self.count(batch)
        return yielded, time.perf_counter() - start

    def timed_epoch(self):
        self.add(*self.epoch())

    def close(self):
        iterable, self.iterable = self.iterable, None
        shutdown = getattr(getattr(iterable, '_iterator', None), '_shutdown_workers', None)
        if shutdown is not None:        # persistent DataLoader workers
            shutdown()


# ---------------------------------------------------------------------------- report

def print_table(timings, runs='epoch seconds'):
    """One row per timing: label, median rate, unit and the seconds of each timed run."""
    width = max(len(t.label) for t in timings)
    print(f"{'method':<{width}}  {'median':>10}  {'unit':<8}  {runs}")
    for t in timings:
        secs = ' '.join(f'{s:.2f}' for s in t.seconds)
        print(f'{t.label:<{width}}  {t.median:>10.1f}  {t.unit:<8}  {secs}')


def ratio_rows(timings, ratios):
    """``ratios``: ``(numerator key, denominator key, label, target or None)``; returns the
    JSON-able rows with the ratio of the median rates (``pass`` is None without a target)."""
    rates = {t.key: t.median for t in timings}
    rows = []
    for num, den, label, target in ratios:
        value = rates[num] / rates[den]
        rows.append({'ratio': f'{num}/{den}', 'label': label, 'value': value,
                     'target': target, 'pass': None if target is None else value >= target})
    return rows


def print_ratios(rows, no_target='(no target)', target_format='.1f'):
    """``label  1.23x  target >= 1.5  PASS`` per row (``no_target`` where it has none);
    ``target_format`` formats the target (``'.2f'`` for a target such as 0.65)."""
    width = max(len(r['label']) for r in rows)
    for r in rows:
        if r['target'] is None:
            print(f"{r['label']:<{width}}  {r['value']:6.2f}x  {no_target}")
        else:
            print(f"{r['label']:<{width}}  {r['value']:6.2f}x  target >= "
                  f"{r['target']:{target_format}}  "
                  f"{'PASS' if r['pass'] else 'MISS'}")
