"""Training on the CPU is reproducible: two runs of one seed end with identical checkpoints,
whatever ``data.num_workers`` (a loading setting, which a resume may change) and whatever state
the process's generators started in."""
import numpy as np
import pytest
import torch

from fastssl.config import load_settings
from fastssl.trainer import Trainer


@pytest.mark.e2e   # two whole training runs, 25 s: make test-e2e
def test_runs_of_one_seed_end_alike_for_any_loader_thread_count(small_beton, tiny_args,
                                                                 tmp_path, python_pipelines):
    """FFCV set torch's thread count to the loader's: with data.num_workers=2 instead of 1 the
    convolutions summed in another order and every weight differed. NumPy's and Python's
    generators were not seeded: their states in the checkpoint (identical in every process,
    training.md says) were those each process happened to start with."""
    saved = []
    for workers, start in ((1, 1), (2, 2)):
        np.random.seed(start)   # a process of its own starts its generators elsewhere
        run = tmp_path / f'run{workers}'
        Trainer(load_settings(tiny_args(small_beton, run, '--train.epochs=1',
                                        f'--data.num_workers={workers}'))).fit()
        saved.append(torch.load(run / 'checkpoint_last.pt', weights_only=False))
    one, two = saved
    assert one['model'].keys() == two['model'].keys()
    for name, tensor in one['model'].items():
        assert torch.equal(tensor, two['model'][name]), name
    buffers = [[s['momentum_buffer'] for s in c['optimizer']['state'].values()] for c in saved]
    assert len(buffers[0]) == len(buffers[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(*buffers))
    assert torch.equal(one['rng']['torch'], two['rng']['torch'])
    assert repr(one['rng']['numpy']) == repr(two['rng']['numpy'])
    assert one['rng']['python'] == two['rng']['python']
