"""Progress: a tqdm bar when standard error is a terminal, plain lines (every 10 %, never a
carriage return) on standard output otherwise, nothing when disabled."""
import io
import sys

from tqdm import tqdm

from fastssl_common.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_every_ten_percent_with_the_bar_figures():
    out = io.StringIO()
    with LineProgress(total=200, desc='writing', unit='img', file=out) as bar:
        for _ in range(200):
            bar.update()
    lines = out.getvalue().splitlines()
    assert '\r' not in out.getvalue()
    assert [line.split()[1] for line in lines] == [f'{p}%' for p in range(0, 101, 10)]
    assert lines[5].startswith('writing:  50% 100/200 [') and 'img/s]' in lines[5]


def test_a_total_that_grows_and_an_unknown_total():
    out = io.StringIO()
    bar = LineProgress(total=0, desc='reading', unit='frame', file=out)
    bar.total = 50
    bar.update(30)                  # 60 %
    bar.total = 200                 # 15 %: no step backwards is printed
    bar.update(170)
    bar.close()
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ['60%', '100%']
    out = io.StringIO()
    for _ in LineProgress(iter(range(7)), desc='counting', file=out):
        pass
    assert out.getvalue().startswith('counting: 7 [')       # the end, with its count


def test_percentages_round_down_so_100_means_done():
    out = io.StringIO()
    with LineProgress(total=1000, desc='hashing', file=out) as bar:
        bar.update(999)
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ['0%', '99%']


def test_where_progress_goes(monkeypatch):
    monkeypatch.setattr(sys, 'stderr', Terminal())
    assert isinstance(progress_bar(total=3), tqdm) and not progress_bar(total=3).disable
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    monkeypatch.setattr(sys, 'stdout', io.StringIO())
    bar = progress_bar(total=3, desc='x')
    assert isinstance(bar, LineProgress) and bar.file is sys.stdout
    assert progress_bar(total=3, enabled=False).disable
