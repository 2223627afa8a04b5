"""An epoch's progress with the run's figures (loss, lr, pairs/s), as the project shows
progress (``fastssl_common.progress``): a tqdm bar on standard error when that is a terminal;
anywhere else (a log file, a pipe, a scheduler's output) one plain line on standard output
every 10 % of the epoch, never a carriage return."""
import sys

from tqdm import tqdm

from fastssl_common.progress import LineProgress, is_terminal


class EpochLines(LineProgress):
    """:class:`LineProgress` with tqdm's ``set_postfix``: each line ends with the latest
    figures, as the bar shows them."""
    postfix = ''

    def set_postfix(self, **figures):
        self.postfix = ', '.join(f'{name}={value}' for name, value in figures.items())

    def _line(self):
        return f'{super()._line()} {self.postfix}'.rstrip()


def epoch_progress(total, desc, enabled, done=0):
    """A bar (terminal), lines (elsewhere) or nothing (not ``enabled``) for an epoch of
    ``total`` steps, ``done`` of them already (a resumed epoch)."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if is_terminal(sys.stderr):
        return tqdm(total=total, desc=desc, initial=done, leave=False, file=sys.stderr)
    progress = EpochLines(total=total, desc=desc, file=sys.stdout)
    progress.update(done)
    return progress
