"""fastssl/preemption.py: a first SIGTERM/SIGINT is a request noted for the next step
boundary, a second one stops at once, the previous handlers come back afterwards, and under
torchrun every rank agrees to stop when any one of them was signalled."""
import multiprocessing
import os
import signal

import pytest

from fastssl.distributed import World
from fastssl.preemption import Preempted, StopSignals


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_a_request_and_a_second_one_stops_at_once(signum):
    before = signal.getsignal(signum)
    with StopSignals(World()) as stop:
        assert stop.agreed() == 0
        os.kill(os.getpid(), signum)
        assert stop.agreed() == signum
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signum) is before


def test_preempted_says_how_to_resume_and_exits_with_128_plus_the_signal():
    stop = Preempted(signal.SIGTERM, 'runs/x/checkpoint_last.pt', 'after step 3 of 8 of epoch 2')
    assert stop.exit_code == 143 and Preempted(signal.SIGINT, 'p', 'x').exit_code == 130
    assert str(stop) == ('stopped by SIGTERM after step 3 of 8 of epoch 2: checkpoint '
                         'runs/x/checkpoint_last.pt; to continue, run the same command with '
                         '--train.resume=true')


def _rank(rank, store, signalled, results):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    try:
        with StopSignals(World(rank=rank, size=2)) as stop:
            first = stop.agreed()
            if rank == signalled:
                os.kill(os.getpid(), signal.SIGTERM)
            results.put((rank, first, stop.agreed()))
    finally:
        dist.destroy_process_group()


def test_ranks_agree_to_stop_when_one_of_them_is_signalled(tmp_path):
    context = multiprocessing.get_context('spawn')
    results = context.Queue()
    ranks = [context.Process(target=_rank, args=(rank, tmp_path / 'store', 1, results))
             for rank in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
        assert process.exitcode == 0
    seen = sorted(results.get(timeout=5) for _ in ranks)
    assert seen == [(0, 0, signal.SIGTERM), (1, 0, signal.SIGTERM)]
