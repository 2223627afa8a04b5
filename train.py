"""Train MoCo v2 from a .beton: ``python train.py --config-file configs/X.yaml [--sec.key=v ...]``.

All settings are the fastargs sections of ``fastssl/config.py``; ``--help`` lists them.
Several processes (GPUs, machines): ``torchrun --nproc_per_node=N train.py ...``
(docs/training.md). SIGTERM or SIGINT saves a checkpoint at the next step and exits with
128 + the signal after one line saying how to resume (``fastssl/preemption.py``).
"""
from fastssl.train_command import main
from fastssl_common.errors import run_cli

if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
