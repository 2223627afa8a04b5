"""The training command (``python train.py``, ``fastssl-train``): settings -> Trainer -> fit,
with the outcome in a line or two; preemption exits 128 + the signal after the resume line."""
import shlex
import sys

from fastssl_common.errors import run_cli


def main(argv=None):
    from fastssl.config import load_settings

    # the settings first: a typo is one line in a fraction of a second, before torch loads
    settings = load_settings(sys.argv[1:] if argv is None else argv, dataset_must_exist=True)
    from fastssl import distributed
    from fastssl.preemption import Preempted
    from fastssl.trainer import Trainer
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
        # quoted: a folder with a space in its name stays one argument when pasted
        print(f'done. TensorBoard logs: {run_dir}  (tensorboard --logdir {shlex.quote(run_dir)})')
        if last:
            print(f'last checkpoint: {last}')
    return 0


def cli():
    """Console entry point: ``main`` with one-line errors; SIGTERM before the steps (data, model,
    the kNN monitor's first pass) stops as Ctrl-C does, in the steps it saves (``preemption``)."""
    run_cli(main, stop_on_sigterm=True)
