"""Showing invariance results: text tables, the JSON document, TensorBoard scalars and the
score-vs-magnitude plot of rendered data (matplotlib, also logged to TensorBoard).

``results`` everywhere is a list of dicts, one per (checkpoint, measurement)::

    {'checkpoint': name, 'measurement': 'viewpoint 30', 'transformation': 'viewpoint',
     'magnitude': 30 or None, 'unit': '...', 'scores': {10: s10, 25: s25}, ...}
"""
import os

from fastssl_common.atomic import atomic_path


def tables(results, checkpoints, ks, title, rendered):
    """Rows = checkpoints. Datasets: one table, a column per measurement and K. Rendered data:
    one table per transformation, a column per magnitude and K."""
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
        score = {(r['checkpoint'], r['measurement']): r['scores'] for r in group}
        rows = [[name] + [f'{score[name, m][k]:.2f}' for m, k in columns] for name in checkpoints]
        out.append(_text_table(heading, header, rows))
    return '\n\n'.join(out)


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
                ax.plot([r['magnitude'] for r in mine], [r['scores'][k] for r in mine],
                        styles[s % len(styles)], marker='o', color=f'C{c}',
                        label=f'{name} (top-{k})')
        ax.set_title(f'{transformation} ({label})')
        ax.set_xlabel(points[0]['unit'] or 'magnitude')
        ax.set_ylabel('invariance score')
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f'Invariance vs transformation magnitude ({label})')
    fig.tight_layout()
    return fig


def save_figure(figure, path):
    """Write ``figure`` as a PNG at ``path``, atomically (a full disk: one line naming it)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format='png', dpi=110)
