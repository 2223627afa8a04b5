"""Showing invariance results: text tables, the JSON document, TensorBoard scalars and the
score-vs-magnitude plot of rendered data (matplotlib, also logged to TensorBoard).

``results`` everywhere is a list of dicts, one per (checkpoint, measurement)::

    {'checkpoint': name, 'measurement': 'viewpoint 30', 'transformation': 'viewpoint',
     'magnitude': 30 or None, 'unit': '...', 'scores': {10: s10, 25: s25},
     'ci_low': {10: ..., 25: ...}, 'ci_high': {...}, 'bootstrap': {...}, ...}

``ci_low``/``ci_high`` (and ``bootstrap``, how they were drawn) are optional: without them
the tables show plain scores and the plot has no error bars.
"""
import os
import string
import textwrap

import numpy as np

from fastssl_common.atomic import atomic_path


def tables(results, checkpoints, ks, title, rendered):
    """Rows = checkpoints. Datasets: one table, a column per measurement and K. Rendered data:
    one table per transformation, a column per magnitude and K. With intervals, a cell is
    'score [low, high] letters' and a legend follows the tables."""
    intervals = all('ci_low' in r for r in results)
    groups = {}
    for r in results:
        groups.setdefault(r['transformation'] if rendered else '', []).append(r)
    out = []
    for transformation, group in groups.items():
        measurements = list(dict.fromkeys(r['measurement'] for r in group))
        unit = group[0]['unit']
        heading = f'{title}: {transformation}' + (f' ({unit})' if unit else '') \
            if transformation else title
        columns = [(m, k) for k in ks for m in measurements]
        label = {m: (m[len(transformation):].strip() or m) if transformation else m
                 for m in measurements}
        header = ['checkpoint'] + [f'{label[m]} @{k}' for m, k in columns]
        by_cell = {(r['checkpoint'], r['measurement']): r for r in group}
        cells = [[_cell(by_cell[name, m], k, intervals) for name in checkpoints]
                 for m, k in columns]
        if intervals and len(checkpoints) > 1:
            for column, (m, k) in zip(cells, columns):
                letters = significance_letters(
                    [(by_cell[name, m]['ci_low'][k], by_cell[name, m]['ci_high'][k])
                     for name in checkpoints])
                column[:] = [f'{cell} {mark}' for cell, mark in zip(column, letters)]
        rows = [[name] + [column[i] for column in cells] for i, name in enumerate(checkpoints)]
        out.append(_text_table(heading, header, rows))
    if intervals:
        out.append(_legend(results[0]['bootstrap'], len(checkpoints) > 1))
    return '\n\n'.join(out)


def _cell(result, k, intervals):
    if not intervals:
        return f"{result['scores'][k]:.2f}"
    return (f"{result['scores'][k]:.1f} [{result['ci_low'][k]:.1f}, "
            f"{result['ci_high'][k]:.1f}]")


def _legend(bootstrap, letters):
    what = ('the targets, each with all its sets' if bootstrap['unit'] == 'targets'
            else 'the sets within each target')
    lines = [f"[low, high]: {bootstrap['confidence']:.0%} basic bootstrap interval "
             f"({bootstrap['resamples']} resamples of {what}, seed {bootstrap['seed']}; "
             f"docs/evaluation.md)."]
    if letters:
        lines.append('a, b, ...: in a column, scores sharing a letter have overlapping '
                     'intervals: their difference is not significant (n.s.); scores with no '
                     'letter in common differ.')
    return '\n'.join(textwrap.fill(line, 100, subsequent_indent='  ') for line in lines)


def significance_letters(intervals):
    """Compact letter display of interval overlap: one string of letters per interval.

    intervals: [(low, high), ...]. Two intervals share a letter exactly when they overlap
    (closed intervals). Each letter is a largest group of mutually overlapping intervals;
    on a line such a group has a common point, the largest low end among them, so the groups
    are read off at the low ends. 'a' is the group with the highest mean midpoint."""
    def overlapping(x):
        return frozenset(i for i, (lo, hi) in enumerate(intervals) if lo <= x <= hi)
    candidates = {overlapping(lo) for lo, _ in intervals}
    groups = [g for g in candidates if not any(g < other for other in candidates)]
    groups.sort(key=lambda g: -sum(sum(intervals[i]) for i in g) / len(g))
    # 26 letters, then doubled ('aa', 'bb', ...): more groups than that is a very long table.
    names = [string.ascii_lowercase[i % 26] * (1 + i // 26) for i in range(len(groups))]
    return [''.join(name for name, g in zip(names, groups) if i in g)
            for i in range(len(intervals))]


def _text_table(heading, header, rows):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(cells):  # names left-aligned, numbers right-aligned
        return '  '.join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return '\n'.join([heading, line(header)] + [line(row) for row in rows])


def log_tensorboard(run_dir, results, checkpoints, rendered, label, figure=None):
    """Scalars ``invariance/<measurement>/top<K>`` (rendered data: ``invariance (rendered
    data)/<transformation>/top<K>`` at step = magnitude), one TensorBoard run per checkpoint
    under ``run_dir/<checkpoint>``; the curve figure in ``run_dir`` itself."""
    from .monitor import Monitor
    prefix = f'invariance ({label})' if rendered else 'invariance'
    for name in checkpoints:
        monitor = Monitor(os.path.join(run_dir, name))
        for r in (r for r in results if r['checkpoint'] == name):
            tag = r['transformation'] if rendered else r['measurement']
            step = int(round(r['magnitude'])) if r['magnitude'] is not None else 0
            monitor.scalars(step, **{f'{prefix}/{tag}/top{k}': v for k, v in r['scores'].items()})
        monitor.close()
    if figure is not None:
        monitor = Monitor(run_dir)
        monitor.figure(f'{prefix}/curves', figure)
        monitor.close()


def curve_figure(results, checkpoints, ks, label):
    """Score vs magnitude, one panel per transformation with a magnitude, one colour per
    checkpoint, one line style per K. None when no result has a magnitude."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    curves = list(dict.fromkeys(r['transformation'] for r in results
                                if r['magnitude'] is not None))
    if not curves:
        return None
    cols = min(2, len(curves))
    rows = (len(curves) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    styles = ['-', '--', ':', '-.']
    for ax, transformation in zip(axes.flat, curves):
        points = [r for r in results if r['transformation'] == transformation]
        for c, name in enumerate(checkpoints):
            mine = sorted((r for r in points if r['checkpoint'] == name),
                          key=lambda r: r['magnitude'])
            for s, k in enumerate(ks):
                x = [r['magnitude'] for r in mine]
                ax.plot(x, [r['scores'][k] for r in mine], styles[s % len(styles)],
                        marker='o', color=f'C{c}', label=f'{name} (top-{k})')
                if all('ci_low' in r for r in mine):
                    # Bars from low to high: the basic interval need not be centred on the
                    # score (it can even miss it), so it is drawn around its own midpoint.
                    low = np.array([r['ci_low'][k] for r in mine])
                    high = np.array([r['ci_high'][k] for r in mine])
                    ax.errorbar(x, (low + high) / 2, yerr=(high - low) / 2, fmt='none',
                                ecolor=f'C{c}', elinewidth=1, capsize=3, alpha=0.7)
        ax.set_title(f'{transformation} ({label})')
        ax.set_xlabel(points[0]['unit'] or 'magnitude')
        ax.set_ylabel('invariance score')
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=8)
    bars = next((r['bootstrap'] for r in results if 'ci_low' in r), None)
    fig.suptitle(f'Invariance vs transformation magnitude ({label})' + (
        '' if bars is None else f"; bars: {bars['confidence']:.0%} bootstrap intervals"))
    fig.tight_layout()
    return fig


def save_figure(figure, path):
    """Write ``figure`` as a PNG at ``path``, atomically (a full disk: one line naming it)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format='png', dpi=110)
