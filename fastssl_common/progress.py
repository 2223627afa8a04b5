"""Progress that suits where it goes: a tqdm bar on a terminal, plain lines elsewhere.

A bar redrawn with carriage returns turns a log file into one enormous line, and tqdm left to
itself prints nothing at all when its output is not a terminal. :func:`progress_bar` gives a
tqdm bar on standard error when that is a terminal and, anywhere else (a pipe, a file, a
scheduler's log), a :class:`LineProgress` on standard output: the same figures (count, total,
percentage, elapsed, remaining, rate) as one plain line at every 10 % step and one at the end,
never a ``\\r``. The lines go with the command's summary, so that standard error keeps only
warnings and the one-line errors.
"""
import sys
import time

from tqdm import tqdm

# the percentage is rounded down (as the 10 % steps are): 99.9 % never shows as 100 %
LINE_FORMAT = '{desc}: {floor:3d}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]'
COUNT_FORMAT = '{desc}: {n_fmt} [{elapsed}, {rate_fmt}]'    # while the total is unknown


def progress_bar(iterable=None, *, total=None, desc='', unit='it', enabled=True,
                 unit_scale=False):
    """A tqdm bar (stderr is a terminal), a :class:`LineProgress` on stdout (it is not) or
    nothing (``enabled`` False), all with tqdm's interface: iterate it, or ``update(n)``, set
    ``total``, ``refresh()``; use it as a context manager. ``unit_scale`` writes counts as
    1.5M (binary multiples: for bytes)."""
    options = dict(total=total, desc=desc, unit=unit, unit_scale=unit_scale, unit_divisor=1024)
    if not enabled:
        return tqdm(iterable, disable=True, **options)
    if is_terminal(sys.stderr):
        return tqdm(iterable, file=sys.stderr, **options)
    return LineProgress(iterable, file=sys.stdout, **options)


def is_terminal(file):
    """True when ``file`` is an interactive terminal."""
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """The part of tqdm's interface the project uses, reporting one line per ``step``
    percent (and one at the end) instead of redrawing a bar."""

    def __init__(self, iterable=None, *, total=None, desc='', unit='it', file=None, step=10,
                 unit_scale=False, unit_divisor=1000):
        if total is None and iterable is not None and hasattr(iterable, '__len__'):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.unit_scale, self.unit_divisor = unit_scale, unit_divisor
        self.file = sys.stdout if file is None else file
        self.step, self.n = step, 0
        self._start = time.monotonic()
        self._shown = None         # (step reached, count) of the last line printed
        self.refresh()

    def _percent(self):
        return min(100, int(100 * self.n / self.total))

    def _line(self):
        template = (LINE_FORMAT.replace('{floor:3d}', f'{self._percent():3d}') if self.total
                    else COUNT_FORMAT)
        return tqdm.format_meter(self.n, self.total or None, time.monotonic() - self._start,
                                 prefix=self.desc, unit=self.unit, bar_format=template,
                                 unit_scale=self.unit_scale, unit_divisor=self.unit_divisor)

    def _print(self, reached):
        print(self._line(), file=self.file, flush=True)
        self._shown = (reached, self.n)

    def refresh(self):
        """Print a line if a new ``step`` percent has been reached since the last one."""
        if not self.total:
            return
        reached = self._percent() // self.step
        if self._shown is None or reached > self._shown[0]:
            self._print(reached)

    def update(self, n=1):
        self.n += n
        self.refresh()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()      # as tqdm does at the end of an iteration

    def close(self):
        """The final line (unless the last one already showed this count)."""
        if self._shown is None or self._shown[1] != self.n:
            self._print(None if self._shown is None else self._shown[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
