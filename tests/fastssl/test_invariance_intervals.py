"""Intervals in the invariance report (fastssl/invariance_report.py): the letters that mark
differences as not significant when intervals overlap, cells and legend of the tables, and the
error bars of the score-vs-magnitude figure."""
import pytest

from fastssl.invariance_report import curve_figure, significance_letters, tables

BOOTSTRAP = {'resamples': 1000, 'confidence': 0.95, 'seed': 0, 'unit': 'targets'}


def result(checkpoint, measurement, score, low, high, magnitude=None):
    return {'checkpoint': checkpoint, 'measurement': measurement,
            'transformation': measurement.split()[0], 'magnitude': magnitude,
            'unit': 'degrees' if magnitude is not None else '', 'scores': {10: score},
            'ci_low': {10: low}, 'ci_high': {10: high}, 'bootstrap': BOOTSTRAP}


def test_letters_shared_exactly_when_intervals_overlap():
    assert significance_letters([(60, 64), (50, 55)]) == ['a', 'b']      # apart
    assert significance_letters([(60, 64), (63, 70)]) == ['a', 'a']      # overlap
    assert significance_letters([(60, 64), (64, 70)]) == ['a', 'a']      # touching ends
    # A overlaps B, B overlaps C, A and C apart: B shares a letter with each.
    letters = significance_letters([(10, 12), (11.5, 14), (13, 15)])
    assert letters == ['b', 'ab', 'a']
    for i in range(3):
        for j in range(3):
            lo_i, hi_i = [(10, 12), (11.5, 14), (13, 15)][i]
            lo_j, hi_j = [(10, 12), (11.5, 14), (13, 15)][j]
            overlap = lo_i <= hi_j and lo_j <= hi_i
            assert bool(set(letters[i]) & set(letters[j])) == overlap


def test_table_marks_overlapping_rows_not_significant():
    rows = [result('fti', 'instance', 62.04, 60.0, 64.0),
            result('mocov2', 'instance', 61.0, 59.5, 62.5),
            result('random_init', 'instance', 40.0, 38.0, 42.0)]
    lines = tables(rows, ['fti', 'mocov2', 'random_init'], [10], 'Pascal3D+', False).splitlines()
    assert lines[:5] == [
        'Pascal3D+',
        'checkpoint          instance @10',
        'fti          62.0 [60.0, 64.0] a',
        'mocov2       61.0 [59.5, 62.5] a',
        'random_init  40.0 [38.0, 42.0] b']
    legend = ' '.join(line.strip() for line in lines[6:])
    assert legend.startswith('[low, high]: 95% basic bootstrap interval (1000 resamples of the '
                             'targets, each with all its sets, seed 0')
    assert 'sharing a letter have overlapping intervals: their difference is not significant' \
        in legend
    assert max(map(len, lines)) <= 100
    apart = [result('fti', 'instance', 70.0, 66.0, 74.0),
             result('mocov2', 'instance', 61.0, 59.5, 62.5)]
    text = tables(apart, ['fti', 'mocov2'], [10], 'Pascal3D+', False)
    assert '74.0] a' in text and '62.5] b' in text


def test_plot_has_error_bars(tmp_path):
    pytest.importorskip('matplotlib')
    rows = [result(name, f'viewpoint {m}', score, score - 2, score + 3, m)
            for name, score in (('fti', 60.0), ('random_init', 50.0)) for m in (15, 30)]
    figure = curve_figure(rows, ['fti', 'random_init'], [10], 'rendered data')
    (axes,) = [ax for ax in figure.axes if ax.lines]
    bars = [c.get_segments() for c in axes.collections]
    assert [[tuple(s[:, 1]) for s in segments] for segments in bars] == [
        [(58.0, 63.0), (58.0, 63.0)], [(48.0, 53.0), (48.0, 53.0)]]
    assert 'bars: 95% bootstrap intervals' in figure._suptitle.get_text()
