"""Stopping cleanly on SIGTERM (a scheduler's preemption or time limit) and SIGINT (Ctrl-C).

While :class:`StopSignals` is active, the first SIGTERM or SIGINT only asks the run to stop:
the trainer finishes the step under way, saves a checkpoint (mid-epoch if need be, with the
step; ``fastssl.checkpoint``) and raises :class:`Preempted`, which ``train.py`` reports in one
line and turns into exit status 128 + the signal (143 for SIGTERM, 130 for SIGINT), what a
shell reports for a process that signal ended: the run did not finish, so ``&&`` chains stop
and a job script can tell a preemption (requeue) from success or an error (exit 2). A second
signal stops at once, without a checkpoint (``KeyboardInterrupt``).

Under torchrun each rank may see the signal at a different step (or not at all), so the ranks
agree after every step: one all-reduce (max) of the signal number over a gloo group on the
CPU (no GPU synchronisation), and all stop after the same step.
"""
import signal

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Training stopped on a signal after saving ``path``; ``exit_code`` is 128 + signal."""

    def __init__(self, signum, path, where):
        self.signum, self.path, self.exit_code = signum, path, 128 + signum
        super().__init__(f'stopped by {signal.Signals(signum).name} {where}: checkpoint '
                         f'{path}; to continue, run the same command with '
                         f'--train.resume=true')


class StopSignals:
    """A context in which SIGTERM and SIGINT ask the run to stop at a step boundary;
    :meth:`agreed` says whether every rank stops now."""

    def __init__(self, world):
        self.world, self.received, self.previous = world, 0, {}
        self.group = None  # the default group when it is gloo (CPU runs)
        if world.distributed and dist.get_backend() != 'gloo':
            self.group = dist.new_group(backend='gloo')  # collective: every rank creates it

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = signum

    def agreed(self):
        """The signal every rank stops on after this step (0: carry on). Under torchrun a
        collective: every rank calls it at the same step."""
        if not self.world.distributed:
            return self.received
        flag = torch.tensor([self.received])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return int(flag.item())
