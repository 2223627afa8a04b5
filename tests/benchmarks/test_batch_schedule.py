"""The replay of a batch's split among threads: each schedule's batch time against the ideal."""
import numpy as np

from benchmarks.batch_schedule import batch_times, replay


class _InOrder:
    """Draws every sample once, in order: the replayed batch is exactly the samples given."""

    def integers(self, low, high, size):
        return np.arange(size)


def _one_batch(times, keys, threads):
    times = np.asarray(times, np.float64)
    return batch_times([times], [np.asarray(keys, np.float64)], threads, len(times), 1,
                       _InOrder())


def test_equal_samples_split_evenly_under_every_schedule():
    result = _one_batch([1.0] * 8, [0.0] * 8, threads=4)
    assert result == {'fixed split': 2.0, 'shared': 2.0, 'costliest first': 2.0, 'ideal': 2.0}


def test_each_schedule_on_one_slow_sample_first():
    # 2 threads, 4 samples: the slow one first. Fixed split: [4, 1] | [1, 1] -> 5.
    # Shared in order: thread 1 takes 4, thread 2 takes 1, 1, 1 -> 4.
    result = _one_batch([4.0, 1.0, 1.0, 1.0], [4.0, 1.0, 1.0, 1.0], threads=2)
    assert result['fixed split'] == 5.0
    assert result['shared'] == 4.0
    assert result['costliest first'] == 4.0
    assert result['ideal'] == 3.5


def test_costliest_first_keeps_a_late_slow_sample_from_ending_the_batch():
    # in order, the slow sample comes last and starts only when a thread is free: 1 + 4 = 5
    times = [1.0, 1.0, 1.0, 4.0]
    result = _one_batch(times, times, threads=2)
    assert result['shared'] == 5.0
    assert result['costliest first'] == 4.0       # 4 | 1, 1, 1


def test_replay_reports_ratio_to_ideal_and_idle_time_per_sample():
    rng = np.random.default_rng(1)
    times = rng.uniform(0.5e-3, 2e-3, 200)
    result = replay({'(x)': [(times, times)]}, [2, 16], batch=64, trials=50)
    for threads in (2, 16):
        row = result['(x)'][threads]
        for ratio, idle_ms in row.values():
            assert ratio >= 1.0 and idle_ms >= 0.0
        assert row['costliest first'][0] <= row['shared'][0] <= row['fixed split'][0] + 0.05
    assert result['(x)'][16]['fixed split'][0] > result['(x)'][2]['fixed split'][0]
