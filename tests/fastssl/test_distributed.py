"""fastssl.distributed and fastssl.rank_agreement on real gloo process groups (2 CPU
processes), against single-process references computed here: the global-batch gather order,
shuffle-BN (keys go back to their owners; across 2 ranks it equals split-BN with 2 splits for
the same permutation), the all-gathered enqueue (the real MoCo.enqueue_terms), BN statistics
averaging, config and state agreement, and a stalled rank.

One spawn of two ranks runs every distributed computation (process start-up dominates the
cost); each rank saves what it computed and the tests compare.
"""
import datetime
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from fastssl import distributed, rank_agreement
from fastssl.moco import MoCo
from fastssl.split_batchnorm import SplitBatchNorm, forward_in_split_groups
from fastssl_common.errors import UserError

WORLD = 2
GLOBAL = 8          # global batch
SHUFFLE_SEED = 5
CHANNELS = 3
STALL_SECONDS = 20  # rank 1's stall: far past the 2 s collective timeout
STALL_OVER = 'stall_over'  # rank 0 writes it once its collective has given up


def global_batch():
    """A fixed global batch (GLOBAL, C, 4, 4) with per-sample offsets (distinct rows)."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(GLOBAL, CHANNELS, 4, 4, generator=gen) + torch.arange(
        GLOBAL, dtype=torch.float32).view(-1, 1, 1, 1)


def key_batches(steps):
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(GLOBAL, 4, generator=gen) for _ in range(steps)]


def config(rank, differ):
    return {'data': {'batch_size': 8 + (rank if differ else 0), 'path': 'x.beton'},
            'moco': {'momentum': 0.99}}


TERM_QUEUES = ((0, 0), (0, 1))  # two terms sharing one queue; two terms, two queues
STEPS = 3


def tiny_moco(term_queues):
    """A small real MoCo whose queues (size 10: three steps of 8 keys per term wrap around)
    start identical in every process that builds it."""
    torch.manual_seed(2)
    return MoCo(arch='resnet18', proj_dim=4, queue_size=10, term_queues=term_queues)


def term_keys(term_queues):
    """Per step, one global batch of keys (GLOBAL, 4) per term."""
    batches = key_batches(STEPS * len(term_queues))
    return [batches[i:i + len(term_queues)] for i in range(0, len(batches), len(term_queues))]


def enqueue_reference(queue, ptr, keys):
    """MoCo's ring-buffer enqueue, written out independently: row (ptr + i) mod K <- keys[i]."""
    for row in keys:
        queue[int(ptr)] = row
        ptr = (ptr + 1) % queue.shape[0]
    return queue, ptr


def _worker(rank, port, out_dir):
    # forked from pytest, whose torch may have run ops on several OpenMP threads: a forked
    # child's first parallel op would wait for ever on the parent's thread pool (GNU OpenMP)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    world = distributed.setup(torch.device('cpu'), timeout_s=60)
    out = {'world': (world.rank, world.size, world.device.type)}
    everything = global_batch()
    mine = everything[rank::WORLD]  # what FFCV's distributed loader gives this rank
    out['gathered'] = distributed.gather_global_batch(mine)
    out['gathered_cl'] = distributed.gather_global_batch(
        mine.contiguous(memory_format=torch.channels_last))

    torch.manual_seed(SHUFFLE_SEED + rank)  # rank 0's permutation must win
    share, perm = distributed.batch_shuffle_ddp(mine)
    out['share'], out['perm'] = share, perm
    out['owner_roundtrip'] = distributed.batch_unshuffle_ddp(share * 10 + 1, perm)
    bn = torch.nn.BatchNorm2d(CHANNELS).train()
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, CHANNELS))
        bn.bias.copy_(torch.linspace(-1, 1, CHANNELS))
        out['shuffle_bn'] = distributed.batch_unshuffle_ddp(bn(share), perm)
    out['bn_running_mean_before'] = bn.running_mean.clone()
    distributed.average_batchnorm_statistics(bn)
    out['bn_running_mean_after'] = bn.running_mean.clone()

    # The real MoCo enqueue under the group: each rank passes only its loader share of keys.
    for term_queues in TERM_QUEUES:
        moco = tiny_moco(term_queues)
        for step in term_keys(term_queues):
            moco.enqueue_terms([keys[rank::WORLD] for keys in step])
        out['queues', term_queues] = moco.queues.clone(), moco.queue_ptrs.clone()

    rank_agreement.check_same_config(world, config(rank, differ=False))
    try:
        rank_agreement.check_same_config(world, config(rank, differ=True))
    except UserError as err:
        out['config_error'] = str(err)

    def only_on_main():
        raise UserError('checkpoint run/x.pt is not readable')
    try:
        rank_agreement.from_main(world, only_on_main)
    except UserError as err:
        out['from_main_error'] = str(err)
    out['from_main_value'] = rank_agreement.from_main(world, lambda: {'next_epoch': 3})

    state = [('encoder.w', torch.arange(6.0)), ('queue_ptrs', torch.tensor(3))]
    rank_agreement.check_same_state(world, state, 'after epoch 1')
    drifted = [('encoder.w', torch.arange(6.0) + (1e-7 if rank else 0)), state[1]]
    try:
        rank_agreement.check_same_state(world, drifted, 'after epoch 2')
    except UserError as err:
        out['state_error'] = str(err)

    # A stalled rank: rank 1 stops taking part for far longer than the group's timeout;
    # rank 0's collective must give up with one line instead of waiting for it.
    short = torch.distributed.new_group(backend='gloo', timeout=datetime.timedelta(seconds=2))
    if rank == 0:
        start = time.perf_counter()
        try:
            with distributed.peer_failures_reported(2, 'a test step'):
                torch.distributed.all_reduce(torch.ones(1), group=short)
        except distributed.PeerLost as err:
            out['stall_error'] = str(err)
        out['stall_seconds'] = time.perf_counter() - start
        (Path(out_dir) / STALL_OVER).touch()
    else:
        # stalled until rank 0 has given up (at most STALL_SECONDS): no fixed sleep to wait out
        deadline = time.monotonic() + STALL_SECONDS
        while not (Path(out_dir) / STALL_OVER).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    torch.save(out, os.path.join(out_dir, f'rank{rank}.pt'))
    distributed.teardown()


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def ranks(module_tmp):
    out_dir = module_tmp.mktemp('ranks')
    # fork: the children inherit the imported torch (spawn would re-import it, ~10 s here)
    mp.start_processes(_worker, args=(free_port(), str(out_dir)), nprocs=WORLD,
                       start_method='fork')
    return [torch.load(out_dir / f'rank{r}.pt', weights_only=False) for r in range(WORLD)]


def test_setup_joins_a_gloo_group_from_torchrun_variables(ranks):
    assert [r['world'] for r in ranks] == [(0, 2, 'cpu'), (1, 2, 'cpu')]


def test_gather_puts_each_sample_back_at_its_global_position(ranks):
    for r in ranks:
        assert torch.equal(r['gathered'], global_batch())
        assert torch.equal(r['gathered_cl'], global_batch())
        assert r['gathered_cl'].is_contiguous(memory_format=torch.channels_last)


def test_shuffle_uses_rank_zeros_permutation_and_shares_it_out(ranks):
    torch.manual_seed(SHUFFLE_SEED)
    perm = torch.randperm(GLOBAL)
    shares = []
    for rank, r in enumerate(ranks):
        assert torch.equal(r['perm'], perm)
        assert torch.equal(r['share'], global_batch()[perm[rank::WORLD]])
        shares.append(r['share'])
    # every sample is encoded exactly once, and not where its query is
    assert sorted(torch.cat(shares)[:, 0, 0, 0].tolist()) == sorted(
        global_batch()[:, 0, 0, 0].tolist())
    assert any(set(perm[rank::WORLD].tolist()) != set(range(rank, GLOBAL, WORLD))
               for rank in range(WORLD))


def test_unshuffle_returns_outputs_to_their_owners(ranks):
    for rank, r in enumerate(ranks):
        assert torch.equal(r['owner_roundtrip'], global_batch()[rank::WORLD] * 10 + 1)


def test_shuffle_bn_over_two_ranks_equals_split_bn_on_one_device(ranks):
    """The single-device remedy (split-BN, 2 splits, as fastssl.moco shuffles keys) and
    shuffle-BN across 2 ranks normalise every key with the same group's statistics."""
    torch.manual_seed(SHUFFLE_SEED)
    perm = torch.randperm(GLOBAL)
    bn = SplitBatchNorm(CHANNELS, num_splits=WORLD).train()
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, CHANNELS))
        bn.bias.copy_(torch.linspace(-1, 1, CHANNELS))
        reference = forward_in_split_groups(bn, global_batch()[perm], WORLD)[torch.argsort(perm)]
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(r['shuffle_bn'], reference[rank::WORLD])


def test_batchnorm_running_statistics_are_averaged_over_ranks(ranks):
    before = torch.stack([r['bn_running_mean_before'] for r in ranks])
    assert not torch.equal(before[0], before[1])
    for r in ranks:
        torch.testing.assert_close(r['bn_running_mean_after'], before.mean(dim=0))


@pytest.mark.parametrize('term_queues', TERM_QUEUES)
def test_all_gathered_enqueue_equals_single_process_enqueue(ranks, term_queues):
    """Every rank's queues equal one process's enqueue of the global batches, which is the
    ring buffer filled with each queue's terms' keys in term order."""
    moco = tiny_moco(term_queues)
    queues, ptrs = moco.queues.clone(), moco.queue_ptrs.clone()
    for step in term_keys(term_queues):
        moco.enqueue_terms(step)  # single process: no group, nothing gathered
        for queue in sorted(set(term_queues)):
            keys = torch.cat([k for k, q in zip(step, term_queues) if q == queue])
            queues[queue], ptrs[queue] = enqueue_reference(queues[queue], ptrs[queue], keys)
    assert torch.equal(moco.queues, queues) and torch.equal(moco.queue_ptrs, ptrs)
    per_queue = STEPS * GLOBAL * len(term_queues) // len(set(term_queues))
    assert ptrs.tolist() == [per_queue % 10] * len(set(term_queues))
    for r in ranks:
        rank_queues, rank_ptrs = r['queues', term_queues]
        assert torch.equal(rank_queues, queues)
        assert torch.equal(rank_ptrs, ptrs)


def test_different_configs_are_refused_on_every_rank_naming_the_key(ranks):
    for r in ranks:
        assert r['config_error'].startswith('ranks were started with different configs')
        assert 'data.batch_size=9 (rank 0: 8)' in r['config_error']
        assert 'moco.momentum' not in r['config_error']


def test_a_decision_of_rank_zero_reaches_every_rank(ranks):
    for r in ranks:
        assert r['from_main_error'] == 'checkpoint run/x.pt is not readable'
        assert r['from_main_value'] == {'next_epoch': 3}


def test_ranks_holding_different_state_are_caught_naming_the_tensor(ranks):
    for r in ranks:
        assert r['state_error'].startswith('rank 1 has diverged from rank 0 after epoch 2 '
                                           '(1 tensors differ: encoder.w)')


def test_a_stalled_rank_gives_one_line_after_the_timeout(ranks):
    message = ranks[0]['stall_error']
    assert message.startswith('rank 0: a collective failed during a test step')
    assert 'dist.timeout_s=2' in message and '\n' not in message
    # A wide bound (not a timing check): it gave up rather than waiting out the sleeper.
    assert ranks[0]['stall_seconds'] < STALL_SECONDS - 5


def test_single_process_is_the_identity(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    world = distributed.setup(torch.device('cpu'), timeout_s=1)
    assert not world.distributed and world.is_main
    x = global_batch()
    assert distributed.gather_global_batch(x) is x
    rank_agreement.check_same_config(world, {'a': 1})
    assert rank_agreement.from_main(world, lambda: 7) == 7


def test_torchrun_variables_are_checked(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2')
    for name in ('RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match='start several processes with torchrun'):
        distributed.setup(torch.device('cpu'), timeout_s=1)
