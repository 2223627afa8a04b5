"""fastssl/monitor.py: the log window's train/ scalars (means of the logged steps' losses per
term, data-wait share, pairs/s), non-finite flags kept on the device, and the TensorBoard
writer's scalars and pair grid read back from the event file; a disabled monitor writes
nothing."""
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastssl.monitor import Monitor, Window, gpu_memory_gib

CPU = torch.device('cpu')


def test_window_stats_are_means_over_its_steps():
    window = Window()
    window.add(torch.tensor([2.0, 1.5, 0.5]), pairs=16)
    window.add(torch.tensor([4.0, 2.5, 1.5]), pairs=16)
    window.wait, window.busy = 1.0, 3.0
    stats = window.stats(0.03, ('frame', 'region'), CPU)
    assert stats == pytest.approx({'train/loss': 3.0, 'train/lr': 0.03, 'train/loss_frame': 2.0,
                                   'train/loss_region': 1.0, 'train/pairs_per_s': 8.0,
                                   'train/data_wait_fraction': 0.25})
    assert [bool(f) for f in window.flags] == [False, False]
    window.add(torch.tensor([float('nan'), 1.0, 1.0]), pairs=16)
    assert bool(window.flags[-1]) and window.flags[-1].device == CPU
    assert gpu_memory_gib(CPU) is None


def test_scalars_and_pair_grid_reach_the_event_file(tmp_path):
    monitor = Monitor(str(tmp_path))
    monitor.scalars(1, **{'train/loss': 2.5, 'knn/top1': 40.0})
    monitor.scalars(2, **{'train/loss': 2.0})
    views = torch.rand(2, 5, 3, 8, 8)                  # 2 views of 5 samples
    monitor.pair_grid(0, views, count=3)
    monitor.pair_grid(0, views, count=0, tag='none')   # count 0: nothing logged
    monitor.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars('train/loss')] == [(1, 2.5), (2, 2.0)]
    assert [e.value for e in events.Scalars('knn/top1')] == [40.0]
    assert events.Tags()['images'] == ['pairs']
    (image,) = events.Images('pairs')
    # 3 rows of 2 views side by side, 8 px each with make_grid's 2 px padding
    assert (image.width, image.height) == (2 + 2 * 10, 2 + 3 * 10)


def test_disabled_monitor_writes_nothing(tmp_path):
    monitor = Monitor(str(tmp_path / 'run'), enabled=False)
    monitor.scalars(1, loss=1.0)
    monitor.pair_grid(0, torch.rand(2, 2, 3, 4, 4), count=2)
    monitor.flush()
    monitor.close()
    assert monitor.writer is None and not (tmp_path / 'run').exists()
