"""Train MoCo v2 from a .beton: ``python train.py --config-file configs/X.yaml [--sec.key=v ...]``.

All settings are the fastargs sections of ``fastssl/config.py``; ``--help`` lists them.
Several processes (GPUs, machines): ``torchrun --nproc_per_node=N train.py ...``
(docs/training.md). SIGTERM or SIGINT saves a checkpoint at the next step and exits with
128 + the signal after one line saying how to resume (``fastssl/preemption.py``).
"""
import sys

from fastssl_common.errors import run_cli


def main(argv):
    from fastssl import distributed
    from fastssl.config import load_settings
    from fastssl.preemption import Preempted
    from fastssl.trainer import Trainer
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    try:
        with distributed.peer_failures_reported(settings.dist.timeout_s):
            trainer = Trainer(settings)  # under torchrun: joins the process group
            last = trainer.fit()
    except Preempted as stop:
        if trainer.world.is_main:
            print(stop, file=sys.stderr)
        return stop.exit_code
    finally:
        distributed.teardown()
    if trainer.world.is_main:
        run_dir = settings.train.run_dir
        print(f'done. TensorBoard logs: {run_dir}  (tensorboard --logdir {run_dir})')
        if last:
            print(f'last checkpoint: {last}')
    return 0


if __name__ == '__main__':
    run_cli(main)
