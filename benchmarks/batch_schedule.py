"""How much of a batch's time its split among the loader's threads costs, replayed from the
loader benchmark's per-sample profile (``benchmarks.loader`` prints it after the profile).

FFCV runs an op's loop over a batch as a Numba ``prange``, and the batch is done when its last
thread is. Each sample's time comes from the profile (each stage timed alone on one core), and
batches of ``--batch-size`` samples drawn from the profiled ones are replayed on N threads
three ways:

* **fixed split**: Numba's own division of a ``prange`` into one contiguous block per thread
  (block sizes differ by at most one), what stock FFCV ops get;
* **shared**: each thread takes the next sample in batch order when it is free;
* **costliest first**: shared, in decreasing order of the key the loaders use
  (``loaders.work_sharing``): the stored JPEG's size for the decode, the photometric op's
  estimate from each view's drawn ops.

Reported per method and thread count: the mean batch time over its ideal (every thread busy
to the end), and the idle thread time that leaves per sample. (a) and (f) are one loop per
batch; (b) is two, the decoder's and then the photometric op's. A replay, not a measurement:
it leaves out everything but the split (hand-offs, memory bandwidth, a core's clock), and it
is what this machine's per-sample times predict for thread counts it does not have.
"""
import numpy as np

SCHEDULES = ('fixed split', 'shared', 'costliest first')


def batch_times(times, keys, threads, batch, trials, rng):
    """Mean batch time of each schedule and of the ideal, over ``trials`` batches of
    ``batch`` samples drawn (with replacement) from ``times`` (per-sample seconds, one per
    loop: a list of arrays whose loops run one after the other) with their ``keys``."""
    totals = dict.fromkeys(SCHEDULES + ('ideal',), 0.0)
    count = len(times[0])
    for _ in range(trials):
        picked = rng.integers(0, count, batch)
        for loop_times, loop_keys in zip(times, keys):
            cost = loop_times[picked]
            totals['fixed split'] += max(block.sum() for block in np.array_split(cost, threads))
            totals['shared'] += _list_schedule(cost, threads)
            order = np.argsort(-loop_keys[picked], kind='stable')
            totals['costliest first'] += _list_schedule(cost[order], threads)
            totals['ideal'] += cost.sum() / threads
    return {name: total / trials for name, total in totals.items()}


def _list_schedule(cost, threads):
    """When the last of ``threads`` threads is done, each taking the next sample when free."""
    free_at = np.zeros(threads)
    for seconds in cost:
        free_at[np.argmin(free_at)] += seconds
    return free_at.max()


def replay(loops, thread_counts, batch, trials, seed=0):
    """``{method: {threads: {schedule: (batch time / ideal, idle ms per sample)}}}`` for
    ``loops`` = ``{method: [(per-sample seconds, keys), ...]}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for method, parts in loops.items():
        times = [np.asarray(t, np.float64) for t, _ in parts]
        keys = [np.asarray(k, np.float64) for _, k in parts]
        out[method] = {}
        for threads in thread_counts:
            means = batch_times(times, keys, threads, batch, trials, rng)
            ideal = means['ideal']
            out[method][threads] = {
                name: (means[name] / ideal, 1e3 * (means[name] - ideal) * threads / batch)
                for name in SCHEDULES}
    return out


def print_replay(result, batch):
    print(f'batch split among threads, replayed from the per-sample profile (batches of '
          f'{batch}): batch time over its ideal / idle ms per sample')
    print(f"{'method':<8}{'threads':>8}" + ''.join(f'{name:>24}' for name in SCHEDULES))
    for method, by_threads in result.items():
        for threads, row in by_threads.items():
            cells = ''.join(f'{ratio:>15.3f}x / {idle:.3f}' for ratio, idle in row.values())
            print(f'{method:<8}{threads:>8}{cells}')
