"""The study's table: per-run scores gathered into rows x columns, each cell the mean over seeds
with its 95 % interval, written as text, markdown and a PNG.

A cell holds one value per seed. With two seeds or more the interval is Student's t interval
of their mean (the spread between training runs); with one seed it is the bootstrap interval
``eval.py invariance`` computed for that score (the spread over targets, not over runs), and a
downstream accuracy of one seed has none.
"""
import math

# The paper's invariances, in its order; eval.py's names for them map onto these columns.
COLUMNS = ('occlusion', 'viewpoint', 'illumination direction', 'illumination colour',
           'instance')
COLUMN_OF = {'light_direction': 'illumination direction',
             'light_colour': 'illumination colour'}
DOWNSTREAM = 'downstream'
CONFIDENCE = 0.95


def column_name(result, kind, root):
    """The column an ``eval.py invariance`` result belongs to: the paper's name for its
    transformation; a generic set folder is named after the folder."""
    import os
    if kind == 'folders':
        return os.path.basename(os.path.normpath(root))
    return COLUMN_OF.get(result['transformation'], result['transformation'])


def pick_results(results, kind, root):
    """{column: result} of one checkpoint's results: a rendered curve is read at its largest
    magnitude (where the curves of different networks lie furthest apart)."""
    picked = {}
    for r in results:
        column = column_name(r, kind, root)
        held = picked.get(column)
        if held is None or (r['magnitude'] or 0) > (held['magnitude'] or 0):
            picked[column] = r
    return picked


def order_columns(names):
    """The paper's columns first, in its order, then any others as they came."""
    names = list(dict.fromkeys(names))
    return [c for c in COLUMNS if c in names] + [c for c in names if c not in COLUMNS]


# ---------------------------------------------------------------------------- cells

def t_quantile(df):
    from scipy.stats import t
    return float(t.ppf(0.5 + CONFIDENCE / 2, df))


def summarise(values):
    """One cell from its per-seed values (dicts with ``score`` and, from eval.py invariance,
    ``ci_low``/``ci_high``): mean, low, high, n and which interval it is."""
    if not values:
        return None
    scores = [v['score'] for v in values]
    n = len(scores)
    mean = sum(scores) / n
    if n == 1:
        low, high = values[0].get('ci_low'), values[0].get('ci_high')
        interval = 'bootstrap' if low is not None else None
    else:
        sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
        half = t_quantile(n - 1) * sd / math.sqrt(n)
        low, high, interval = mean - half, mean + half, 't'
    return {'mean': mean, 'low': low, 'high': high, 'n': n, 'interval': interval,
            'values': scores}


def format_cell(cell):
    """'62.3 ± 1.4' across seeds, '62.3 [60.1, 64.0]' for one seed's bootstrap interval (not
    symmetric), '62.3' without an interval, '-' for no value."""
    if cell is None:
        return '-'
    if cell['interval'] == 't':
        return f"{cell['mean']:.1f} ± {cell['high'] - cell['mean']:.1f}"
    if cell['interval'] == 'bootstrap':
        return f"{cell['mean']:.1f} [{cell['low']:.1f}, {cell['high']:.1f}]"
    return f"{cell['mean']:.1f}"


def legend(seeds):
    if seeds > 1:
        return (f'mean ± half-width of the 95 % t interval over {seeds} seeds (the spread '
                'between training runs)')
    return ('one seed: score [95 % bootstrap interval over the targets, from eval.py '
            'invariance]; no interval between runs, and none for a downstream accuracy')


# ---------------------------------------------------------------------------- tables

def grid(rows, columns, cells, k):
    """[[row, cell text...]] for top-``k`` (the downstream column has no K)."""
    out = []
    for row in rows:
        line = [row]
        for column in columns:
            key = DOWNSTREAM if column == DOWNSTREAM else f'{column}@{k}'
            line.append(format_cell(cells.get(row, {}).get(key)))
        out.append(line)
    return out


def text_table(header, lines):
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    def fmt(line):
        return '  '.join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                         for i, (x, w) in enumerate(zip(line, widths))).rstrip()
    return '\n'.join([fmt(header), *map(fmt, lines)])


def markdown_table(header, lines):
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' if i == 0 else '---:' for i in range(len(header))) + '|']
    out += ['| ' + ' | '.join(line) + ' |' for line in lines]
    return '\n'.join(out)


def tables(rows, columns, cells, ks, first_header, markdown=False):
    """One table per K, titled; ``columns`` may end with the downstream column."""
    render = markdown_table if markdown else text_table
    blocks = []
    for k in ks:
        header = [first_header, *(f'{c} (top-{k})' if c != DOWNSTREAM else c
                                  for c in columns)]
        title = f'Invariance score, top-{k} neurons'
        body = render(header, grid(rows, columns, cells, k))
        blocks.append(f'### {title}\n\n{body}' if markdown else f'{title}\n{body}')
    return '\n\n'.join(blocks)


# ---------------------------------------------------------------------------- plot

def plot(path, rows, columns, cells, k, title):
    """One panel per column: each row's top-``k`` mean with its interval as an error bar."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns) + 1, 3.6),
                             squeeze=False)
    for ax, column in zip(axes[0], columns):
        key = DOWNSTREAM if column == DOWNSTREAM else f'{column}@{k}'
        for x, row in enumerate(rows):
            cell = cells.get(row, {}).get(key)
            if cell is None:
                continue
            # drawn from low to high: a one-seed (basic bootstrap) interval need not hold
            # the score
            line = ax.plot([x], [cell['mean']], 'o')[0]
            if cell['low'] is not None:
                ax.vlines(x, cell['low'], cell['high'], colors=line.get_color())
        ax.set_xticks(range(len(rows)), rows, rotation=45, ha='right', fontsize=8)
        ax.set_title(column if column == DOWNSTREAM else f'{column} (top-{k})', fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format='png')
    plt.close(fig)
