"""Real ``torchrun --nproc_per_node=2 train.py`` on the CPU (gloo), against one process.

Where the math says the runs must agree, and why the comparison is set up this way:

* Data: ``data.order=sequential``. FFCV's distributed loader gives rank r samples r, r + 2,
  ... of the epoch's order, and the trainer gathers keys in that global order, so with the
  same order both runs see the same global batch per step. (``random`` draws its order with
  numpy in one process and with ``DistributedSampler`` under torchrun: other batches.)
* BatchNorm: one process uses split-BN with ``bn_splits=2``; sample n of the batch falls in
  group n mod 2, which is exactly rank n mod 2's batch under torchrun, and the key
  permutation (the same random draw in both runs) gives the same groups for the key
  encoder under shuffle-BN. Running statistics are linear in the batch statistics, so their
  average over ranks is what split-BN keeps. Hence the whole state must match, up to float
  summation order.
* The single-process run *resumes from the 2-rank run's epoch-1 checkpoint* and trains
  epoch 2, so the same run also shows that a checkpoint resumes under another world size
  (same RNG state, same sample order, same augment draws keyed on (seed, epoch, index)).

Both ranks hold identical parameters, queues and optimizer state at every checkpoint: the
trainer checks it (``rank_agreement.check_same_state``, tested to fail in
``tests/fastssl/test_distributed.py``) and would stop the run otherwise.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fastssl.config import load_settings
from fastssl.trainer import Trainer

pytestmark = pytest.mark.e2e   # whole torchrun runs of train.py, 12-30 s each: make test-e2e

# One step per epoch (global batch 16 of the 16 samples): at these sizes training is chaotic,
# float32 summation-order differences (~1e-7) grew ~100x per step in a 3-step experiment, so
# the runs are compared one optimizer step after an identical state. augment.placement=gpu
# runs the batched torch augment on the CPU device: a lighter FFCV pipeline to compile than
# the in-pipeline Numba op, with the same draws.
ARGS = ('--data.batch_size=16', '--data.order=sequential', '--moco.bn_splits=2',
        '--moco.queue_size=16', '--train.epochs=2', '--train.checkpoint_every=1',
        '--augment.placement=gpu')
CLOSE = dict(rtol=1e-4, atol=2e-5)  # observed: <= 2.3e-6 (model), 1.2e-5 (momentum)


def torchrun(repo, *args, program='train.py'):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           '--nproc_per_node=2', os.path.join(repo, program),
                           *map(str, args)], capture_output=True, text=True, cwd=repo,
                          env=env, timeout=400)


@pytest.fixture(scope='module')
def two_ranks(small_beton, module_tmp, repo, tiny_args):
    run = module_tmp.mktemp('ddp') / 'two_ranks'
    result = torchrun(repo, *tiny_args(small_beton, run, *ARGS))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return run, result


@pytest.fixture(scope='module')
def resumed_alone(small_beton, two_ranks, module_tmp, tiny_args):
    """One process, from the 2-rank checkpoint after epoch 1, trains epoch 2."""
    run = module_tmp.mktemp('ddp') / 'one_process'
    run.mkdir()
    shutil.copy(two_ranks[0] / 'checkpoint_e0001.pt', run / 'checkpoint_e0001.pt')
    Trainer(load_settings(tiny_args(small_beton, run, *ARGS, '--train.resume=true'))).fit()
    return run


def test_rank_zero_alone_writes_the_run(two_ranks, scalars):
    run, result = two_ranks
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith('events')) == [
        'checkpoint_e0001.pt', 'checkpoint_e0002.pt', 'checkpoint_last.pt', 'config.yaml']
    assert len([p for p in run.iterdir() if p.name.startswith('events')]) == 1
    assert result.stdout.count('done. TensorBoard logs') == 1
    assert len(scalars(run, 'train/loss')) == 2  # 2 epochs x 1 step of the global batch 16


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks, resumed_alone, scalars,
                                                                model_state):
    (ours, opt_ours), (ref, opt_ref) = model_state(two_ranks[0]), model_state(resumed_alone)
    assert ours.keys() == ref.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], ref[key], **CLOSE, msg=key)
    assert torch.equal(ours['queue_ptrs'], ref['queue_ptrs'])
    for a, b in zip(opt_ours['state'].values(), opt_ref['state'].values()):
        torch.testing.assert_close(a['momentum_buffer'], b['momentum_buffer'], **CLOSE)
    # epoch 2's logged losses: means over ranks == the one-process batch means
    torch.testing.assert_close(torch.tensor(scalars(two_ranks[0], 'train/loss')[1:]),
                               torch.tensor(scalars(resumed_alone, 'train/loss')), **CLOSE)


def test_the_model_moved_in_epoch_two(two_ranks, model_state):
    """The comparison above is not vacuous: epoch 2 changed the state it compares."""
    before = torch.load(two_ranks[0] / 'checkpoint_e0001.pt', weights_only=False)['model']
    after = model_state(two_ranks[0])[0]
    moved = [k for k in after if after[k].is_floating_point()
             and not torch.allclose(after[k], before[k], rtol=1e-3, atol=1e-4)]
    assert 'queues' in moved and any(k.startswith('encoder_q.') for k in moved)



def test_a_batch_larger_than_each_process_share_is_one_line(small_beton, tmp_path, repo,
                                                            tiny_args):
    """16 samples, two processes of 8: a global batch of 20 (10 a process) fits the file but
    not a process's share, which gave no step and a traceback in every rank."""
    run = tmp_path / 'run'
    result = torchrun(repo, *tiny_args(small_beton, run, '--data.batch_size=20',
                                       '--moco.queue_size=40'))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert errors and all(line == errors[0] for line in errors), result.stderr[-3000:]
    assert errors[0].startswith('error: data.batch_size 20 is larger than ')
    assert '(16 samples: 10 a process a step, 8 each)' in errors[0]
    # torchrun's own report of the failed ranks follows; nothing of fastssl's code in it
    assert 'fastssl/' not in result.stderr and 'UnboundLocalError' not in result.stderr
    assert not run.exists()


# train.py under torchrun, each rank sent SIGTERM in its first step, rank 0's checkpoint
# write slowed by 3 s (a slow file system)
SLOW_SAVE = """
import os, runpy, signal, sys, time
sys.path.insert(0, os.getcwd())
import fastssl.trainer as trainer
save, step = trainer.save_checkpoint, trainer.Trainer.train_step
if os.environ['RANK'] == '0':
    trainer.save_checkpoint = lambda *args, **kwargs: time.sleep(3) or save(*args, **kwargs)
def first_step_signalled(self, *args, **kwargs):
    if not getattr(self, 'signalled', False):
        self.signalled = True
        os.kill(os.getpid(), signal.SIGTERM)
    return step(self, *args, **kwargs)
trainer.Trainer.train_step = first_step_signalled
sys.argv[0] = os.path.join(os.getcwd(), 'train.py')
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_a_preempted_rank_waits_for_rank_zeros_checkpoint(small_beton, tmp_path, repo,
                                                          tiny_args):
    """Rank 1 exited as soon as the ranks agreed on their state; torchrun then stopped rank 0
    (SIGTERM, a second signal) in the middle of the preemption checkpoint: none was written."""
    launch = tmp_path / 'launch.py'
    launch.write_text(SLOW_SAVE)
    run = tmp_path / 'run'
    result = torchrun(repo, *tiny_args(small_beton, run, *ARGS), program=str(launch))
    stopped = f'stopped by SIGTERM after epoch 1: checkpoint {run}/checkpoint_e0001.pt'
    assert stopped in result.stderr, result.stderr[-3000:]
    assert 'interrupted' not in result.stderr
    assert (run / 'checkpoint_e0001.pt').is_file()
