"""Speed of the invariance score (``fastssl.invariance.invariance_score``) on feature matrices
of the study's scale, against a plain per-set NumPy loop of the same algorithm.

    python -m benchmarks.invariance [--sizes 10000x512,100000x2048] [--set-size 10]
        [--targets 1000] [--repeats 3] [--reference 100000x2048] [--json OUT] [--quick]

Features: ``relu(0.6 * set component + 0.8 * noise)``, float32, so that sets share activations
and about half the values are exact zeros (as ReLU'd, pooled features have); sets of
``--set-size`` images, ``--targets`` targets (1000, as ALOI: p = 95), images in shuffled order.
Generating them is not timed. The issue's goal: 100k images x 2048 neurons "within seconds".

With a 95 % bootstrap interval (1000 resamples, ``fastssl.invariance.Bootstrap``) the score is
timed again for each resampled unit: the targets (the default) and the sets within each
target; the extra time over the score alone is printed, and the top-10 score with both
intervals.

The reference ("per-set loop") is the algorithm written the direct way, as the authors' script
does it: full ``np.sort`` of every neuron (along the image axis) for the thresholds, then a
Python loop over the sets with NumPy counts per set. It runs once (no warm-up) at
``--reference`` size; both results must agree, and the ratio of the times is printed. One run,
one machine; fastssl's times are the median over ``--repeats`` timed runs after one untimed
warm-up.
"""
import re
import sys
import time

import numpy as np

from benchmarks.common import (
    add_output_options,
    apply_preset,
    benchmark_parser,
    check_json_folder,
    check_memory,
    machine_info,
    print_machine,
    require_at_least,
    write_results,
)
from fastssl.invariance import MIN_SET_SIZE, check_sets, invariance_score
from fastssl.invariance_settings import RESAMPLE_UNITS, Bootstrap
from fastssl_common.errors import UserError, run_cli

DEFAULTS = dict(sizes='10000x512,10000x2048,50000x2048,100000x2048', reference='100000x2048',
                repeats=3, targets=1000)
QUICK = dict(sizes='2000x64,4000x128', reference='2000x64', repeats=1, targets=100)
KS = (10, 25)
SIZE = re.compile(r'(\d+)[xX](\d+)')


def make_sets(n, set_size, targets, rng):
    """Set and target per image: sets of ``set_size`` images, in shuffled order."""
    sets = rng.permutation(np.arange(n) // set_size)
    return sets, sets % targets


def make_features(n, d, set_size, targets, seed=0):
    rng = np.random.default_rng(seed)
    sets, target = make_sets(n, set_size, targets, rng)
    per_set = rng.standard_normal((sets.max() + 1, d), dtype=np.float32)
    h = per_set[sets]
    h *= 0.6
    h += 0.8 * rng.standard_normal((n, d), dtype=np.float32)
    np.maximum(h, 0, out=h)
    return h, sets, target


def per_set_loop(h, sets, targets, ks):
    """The score computed the direct way (sorted thresholds, a loop over sets)."""
    n, d = h.shape
    names = np.unique(targets)
    p = min((1.0 - 1.0 / len(names)) * 100, 95)
    idx = int((n * p) // 100)
    ordered = np.sort(h, axis=0)
    t_pos, t_neg = ordered[idx], ordered[n - 1 - idx]
    g = (h >= t_pos).mean(axis=0)
    local_sum = np.zeros((len(names), d))
    local_count = np.zeros((len(names), d))
    for z in np.unique(sets):
        rows = np.flatnonzero(sets == z)
        if len(rows) < 3:
            continue
        y = np.searchsorted(names, targets[rows[0]])
        fires = np.maximum((h[rows] > t_pos).sum(0), (h[rows] < t_neg).sum(0))
        local_sum[y] += np.where(fires > 0, fires / len(rows), 0)
        local_count[y] += fires > 0
    ratio = local_sum / (local_count + 1e-20) / g
    ranked = -np.sort(-ratio, axis=1)
    return {k: float(ranked[:, :k].mean(axis=1).mean() * (100 - p)) for k in ks}


def timed(fn, repeats, warm_up=True):
    if warm_up:
        fn()  # page cache, thread pool, allocator
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def with_interval(h, sets, targets, ks, unit, repeats):
    """The score with its bootstrap interval, resampling ``unit``: times and intervals."""
    plan = Bootstrap(unit=unit)
    result, seconds = timed(lambda: invariance_score(h, sets, targets, ks, bootstrap=plan),
                            repeats)
    return {'median_seconds': float(np.median(seconds)), 'seconds': seconds,
            'ci': {str(k): list(result.ci[k]) for k in ks}}


def parse_sizes(value, option, args):
    """The sizes of ``option``'s comma-separated ``value``."""
    items = value.split(',')
    if not all(item.strip() for item in items):
        raise UserError(f'{option} {value!r}: an empty size (two commas, or one at an end)')
    return [parse_size(item, option, args) for item in items]


def parse_size(text, option, args):
    """``(images, neurons)`` of one IMAGESxNEURONS of ``option``, checked against the score's
    own rules for sets and targets (without features: cheap), so that a size that cannot be
    scored fails before the sizes before it are timed."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise UserError(f'{option} {text!r}: expected IMAGESxNEURONS, e.g. 10000x512')
    n, d = int(match[1]), int(match[2])
    if d < max(KS):
        raise UserError(f'{option} {text}: the top-{max(KS)} score needs at least {max(KS)} '
                        'neurons')
    # make_features holds the float32 features and two temporaries of their size at once
    check_memory(3 * 4 * n * d, f'{option} {text}: its features')
    try:
        check_sets(*make_sets(n, args.set_size, args.targets, np.random.default_rng(0)))
    except UserError as err:
        raise UserError(f'{option} {text}: {n} images in sets of --set-size {args.set_size} '
                        f'over --targets {args.targets}: {err}') from None
    return n, d


def resolve(args):
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    require_at_least(args, ('repeats',))
    if args.set_size < MIN_SET_SIZE:
        raise UserError(f'--set-size must be at least {MIN_SET_SIZE} (the score counts sets '
                        f'of at least {MIN_SET_SIZE} images)')
    if args.targets < 2:
        raise UserError('--targets must be at least 2 (the score compares targets)')
    args.sizes = parse_sizes(args.sizes, '--sizes', args)
    args.reference = parse_size(args.reference, '--reference', args) if args.reference else None
    check_json_folder(args.json)
    return args


def build_parser():
    parser = benchmark_parser('invariance', __doc__.split('\n\n')[0])
    parser.add_argument('--sizes', help=f"comma-separated IMAGESxNEURONS (default "
                        f"{DEFAULTS['sizes']})")
    parser.add_argument('--set-size', type=int, default=10)
    parser.add_argument('--targets', type=int, help=f"default {DEFAULTS['targets']}")
    parser.add_argument('--repeats', type=int, help=f"default {DEFAULTS['repeats']}")
    parser.add_argument('--reference', help='IMAGESxNEURONS for the per-set loop ("" = skip; '
                        f"default {DEFAULTS['reference']})")
    add_output_options(parser, 'smoke run for tests: 2000x64 and 4000x128, reference 2000x64, '
                       '100 targets, 1 repeat')
    return parser


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    ks = KS
    info = machine_info()
    print_machine(info)
    print(f'invariance score, sets of {args.set_size} images, {args.targets} targets, '
          f'K = {ks}, median of {args.repeats} run(s); with a 95 % interval of 1000 resamples '
          f'of the targets or of the sets: the median and its ratio to the score alone')
    print(f"{'images':>8} {'neurons':>8} {'median s':>9} {'M act/s':>8} "
          f"{'with targets':>12} {'with sets':>12}  runs (s)")
    rows = []
    for n, d in args.sizes:
        h, sets, targets = make_features(n, d, args.set_size, args.targets)
        result, seconds = timed(lambda: invariance_score(h, sets, targets, ks), args.repeats)
        median = float(np.median(seconds))
        intervals = {unit: with_interval(h, sets, targets, ks, unit, args.repeats)
                     for unit in RESAMPLE_UNITS}
        rows.append({'images': n, 'neurons': d, 'median_seconds': median, 'seconds': seconds,
                     'scores': {str(k): v for k, v in result.scores.items()},
                     'intervals': intervals})
        print(f'{n:>8} {d:>8} {median:>9.3f} {n * d / median / 1e6:>8.1f} '
              + ' '.join(f"{i['median_seconds']:>7.3f} {i['median_seconds'] / median:>4.1f}x"
                         for i in intervals.values())
              + '  ' + ' '.join(f'{s:.3f}' for s in seconds))
        del h
    print('\ntop-10 score and its 95 % interval, resampling the targets | the sets')
    for row in rows:
        cis = [row['intervals'][unit]['ci']['10'] for unit in RESAMPLE_UNITS]
        print(f"{row['images']:>8} {row['neurons']:>8} {row['scores']['10']:>7.2f}  "
              + '  '.join(f'[{lo:.2f}, {hi:.2f}]' for lo, hi in cis))
    reference = None
    if args.reference:
        n, d = args.reference
        h, sets, targets = make_features(n, d, args.set_size, args.targets)
        ours, fast = timed(lambda: invariance_score(h, sets, targets, ks).scores, args.repeats)
        # One run, no warm-up: the loop is slow, and it has no pool or buffers to warm.
        theirs, slow = timed(lambda: per_set_loop(h, sets, targets, ks), 1, warm_up=False)
        agree = all(abs(ours[k] - theirs[k]) <= 1e-9 * max(1.0, abs(theirs[k])) for k in ks)
        ratio = float(np.median(slow) / np.median(fast))
        reference = {'images': n, 'neurons': d, 'fastssl_seconds': fast,
                     'per_set_loop_seconds': slow, 'speedup': ratio, 'scores_agree': agree}
        print(f'per-set loop at {n}x{d}: {np.median(slow):.3f} s, fastssl {np.median(fast):.3f} s'
              f': {ratio:.1f}x faster; scores agree: {agree}')
        if not agree:
            print(f'MISMATCH: fastssl {ours} vs per-set loop {theirs}')
    if args.json:
        doc = {'machine': info, 'command': ' '.join(['python', '-m', 'benchmarks.invariance',
                                                     *(argv if argv is not None else
                                                       sys.argv[1:])]),
               'config': {'set_size': args.set_size, 'targets': args.targets,
                          'repeats': args.repeats, 'top_k': list(ks)},
               'results': rows, 'reference': reference}
        write_results(args.json, doc)
    return 0 if reference is None or reference['scores_agree'] else 1


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
