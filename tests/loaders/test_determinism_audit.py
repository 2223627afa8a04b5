"""Loading leaves torch's thread count alone: FFCV 1.0.2 set it to each loader's
``num_workers`` (and to 1 on import), so the model's CPU work ran on the loader's threads and
its floats changed with a loading setting (``loaders/ffcv_compat.py``)."""
import os
import subprocess
import sys

import torch

from loaders.eval_loader import make_eval_loader
from loaders.pair_loader import MultiViewLoader


def test_building_and_iterating_loaders_keeps_torchs_thread_count(small_beton,
                                                                   python_pipelines):
    previous = torch.get_num_threads()
    torch.set_num_threads(3)    # neither loader's count (1; 0 = all cores)
    try:
        for loader in (MultiViewLoader(small_beton, 4, 32, num_workers=1),
                       make_eval_loader(small_beton, 4, 32, num_workers=0)):
            assert torch.get_num_threads() == 3
            for _ in loader:
                assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)


def test_importing_the_loaders_keeps_torchs_thread_count(repo):
    """FFCV's compiler sets 1 when imported: a fresh process is the point."""
    code = ('import torch; torch.set_num_threads(3); import loaders; '
            'print(torch.get_num_threads())')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=repo, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['3']


def test_all_cores_are_the_cores_numba_may_run_on(small_beton, repo):
    """num_workers=0 (data.num_workers' and eval.num_workers' default) was FFCV's
    os.cpu_count(), which Numba refused with a traceback where it runs on fewer threads
    (taskset, a SLURM job's CPU set, NUMBA_NUM_THREADS): 'The number of threads must be
    between 1 and 1'."""
    code = ('import sys; from ffcv.pipeline.compiler import Compiler; '
            'Compiler.set_enabled(False); '
            'from loaders.eval_loader import make_eval_loader; '
            'from loaders.pair_loader import MultiViewLoader; '
            'MultiViewLoader(sys.argv[1], 8, 32, num_workers=0); '   # FFCV refused here
            'print(sum(1 for _ in make_eval_loader(sys.argv[1], 8, 32, num_workers=0)))')
    result = subprocess.run([sys.executable, '-c', code, small_beton], capture_output=True,
                            text=True, cwd=repo, timeout=120,
                            env=dict(os.environ, NUMBA_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['2']   # 16 images, batches of 8
