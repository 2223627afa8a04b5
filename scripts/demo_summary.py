"""What the demo's runs learnt, read back from their TensorBoard logs and checkpoints.

    python scripts/demo_summary.py RUN_DIR [RUN_DIR ...] [--classes N]

Per run: the last epoch's mean loss of each InfoNCE term against ``LEARNT_BAR`` x ln(K + 1),
K the queue the run actually used (read from its checkpoint: the trainer shrinks the
configured queue for small datasets), and the kNN monitor's first and last top-1 against
chance (1 / N for ``--classes N``). ln(K + 1) is the loss of a network that cannot tell its
positive key from the K negatives; a loss well below it means the features separate them.
Exit status 1 when a run misses either bar, so that a script can check a demo; a RUN_DIR
that holds no run (no config.yaml, no last checkpoint) is one ``error:`` line, exit status 2.
"""
import math
import os

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastssl.checkpoint import LAST, load_checkpoint
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, run_cli

LEARNT_BAR = 0.8        # last-epoch loss at most this fraction of ln(K + 1)
MONITOR_RISE = 10.0     # percentage points from the first to the last kNN evaluation
MONITOR_TAG = 'knn/top1'


def queue_size(run_dir):
    """K: the length of the run's (first) key queue."""
    state = load_checkpoint(os.path.join(run_dir, LAST))['model']
    return next(value.shape[1] for name, value in state.items() if name.endswith('queues'))


def scalars(run_dir):
    events = EventAccumulator(str(run_dir), size_guidance={'scalars': 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


def last_epoch_losses(logged, epochs):
    """{term: mean of its logged windows in the last epoch}. Windows are logged every few
    steps; the last epoch is the last 1/epochs of the steps."""
    terms = {tag[len('train/loss_'):]: values for tag, values in logged.items()
             if tag.startswith('train/loss_')}
    last_step = max(step for values in terms.values() for step, _ in values)
    start = last_step * (epochs - 1) / epochs
    return {term: sum(value for step, value in values if step > start) /
            sum(1 for step, _ in values if step > start) for term, values in terms.items()}


def check_run(run_dir):
    """UserError naming ``run_dir`` unless it is a run's folder (config.yaml and LAST)."""
    if not os.path.isdir(run_dir):
        raise UserError(f'RUN_DIR {run_dir} is not a folder')
    for name in ('config.yaml', LAST):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise UserError(f'RUN_DIR {run_dir} holds no run (no {name})')


def summarise(run_dir, classes):
    """-> (lines, passed) for one run."""
    with open(os.path.join(run_dir, 'config.yaml')) as handle:
        epochs = yaml.safe_load(handle)['train']['epochs']
    logged = scalars(run_dir)
    k = queue_size(run_dir)
    bar = LEARNT_BAR * math.log(k + 1)
    name = os.path.basename(os.path.normpath(run_dir))
    lines, passed = [], True
    for term, loss in sorted(last_epoch_losses(logged, epochs).items()):
        ok = loss <= bar
        passed &= ok
        lines.append(f'{name:14s} loss_{term:7s} last epoch {loss:5.2f}  vs {LEARNT_BAR} x '
                     f'ln(K+1) = {bar:.2f} with K = {k} (ln(K+1) = {math.log(k + 1):.2f})  '
                     f"{'PASS' if ok else 'MISS'}")
    monitor = logged.get(MONITOR_TAG, [])
    if monitor:
        first, last = monitor[0][1], monitor[-1][1]
        ok = last - first >= MONITOR_RISE
        passed &= ok
        chance = f', chance {100 / classes:.1f} %' if classes else ''
        lines.append(f'{name:14s} held-out monitor {MONITOR_TAG}: {first:.1f} % (epoch '
                     f'{round(monitor[0][0] * epochs / max(monitor[-1][0], 1))}) -> {last:.1f} % '
                     f'(last){chance}: {last - first:+.1f} points  '
                     f"{'PASS' if ok else 'MISS'} (bar +{MONITOR_RISE:g})")
    return lines, passed


def main(argv=None):
    parser = ArgParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', metavar='RUN_DIR')
    parser.add_argument('--classes', type=int, default=0, help="the monitor's classes")
    args = parser.parse_args(argv)
    if args.classes < 0:
        raise UserError(f'--classes must be at least 1, or 0 for no chance line, got '
                        f'{args.classes}')
    for run in args.runs:
        check_run(run)
    passed = True
    for run in args.runs:
        lines, ok = summarise(run, args.classes)
        print('\n'.join(lines))
        passed &= ok
    return 0 if passed else 1


if __name__ == '__main__':
    run_cli(main)
