"""The study's output: the per-checkpoint evaluations gathered into cells (row x column x K),
printed, and written as ``OUT/study.md``, ``OUT/study.json`` and ``OUT/study.png``."""
import os

from benchmarks import study_table as table
from fastssl_common.atomic import atomic_path, write_json

KS = (10, 25)


def gather(records, eval_sets, invariance, downstream):
    """(rows, columns, cells, picked): cells[row][f'{column}@{k}'] and cells[row]['downstream']
    summarised over the row's seeds; ``picked`` says which measurement each column reads."""
    values, columns, picked = {}, [], {}
    for eval_set in eval_sets:
        labels = {}
        for record in records:
            results = invariance[eval_set.key][record['name']]
            for column, result in table.pick_results(results, eval_set.kind,
                                                     eval_set.root).items():
                if column not in labels:   # a column already filled by another set: say which
                    labels[column] = column if column not in picked else \
                        f'{column} ({eval_set.key})'
                    picked[labels[column]] = {'set': eval_set.key,
                                              'measurement': result['measurement']}
                    columns.append(labels[column])
                row = values.setdefault(record['row'], {})
                for k in KS:
                    row.setdefault(f'{labels[column]}@{k}', []).append(
                        {'score': result['scores'][str(k)], 'ci_low': result['ci_low'][str(k)],
                         'ci_high': result['ci_high'][str(k)]})
    columns = table.order_columns(columns)
    if downstream is not None:
        for record in records:
            values[record['row']].setdefault(table.DOWNSTREAM, []).append(
                {'score': downstream[record['name']]})
        columns.append(table.DOWNSTREAM)
    rows = list(dict.fromkeys(r['row'] for r in records))
    cells = {row: {key: table.summarise(v) for key, v in values[row].items()} for row in rows}
    return rows, columns, cells, picked


def report(out, args, s, records, eval_sets, invariance, downstream, seconds):
    rows, columns, cells, picked = gather(records, eval_sets, invariance, downstream)
    first = 'crop scale_min' if args.ablation else 'variant'
    reading = ', '.join(f"{c}: {p['set']} {p['measurement']}" for c, p in picked.items())
    probe = (f"{table.DOWNSTREAM}: {s['probe']} top-1 % on {args.labelled}"
             if downstream is not None else '')
    trained = [r for r in records if r['row'] != 'random_init']
    budget = (f"budget {s['budget_pairs']} pairs per run; pairs seen: " + ', '.join(
        f"{r['name']} {r['pairs_seen']} ({r['epochs']} ep)" for r in trained))
    recipe = f"recipe {s['recipe']}" if s['recipe'] else "MoCo v2's defaults"
    notes = [f'size {s["size"]} ({recipe}): {s["arch"]} at {s["resolution"]} px, batch '
             f"{s['batch_size']}, {s['seeds']} seed(s); {budget}",
             f'columns read: {reading}' + (f'; {probe}' if probe else ''),
             table.legend(s['seeds']),
             'random_init: the architecture untrained (torchvision init under each seed)']
    if s['size'] == 'quick':
        notes.insert(0, 'TEST SIZE (--quick): these numbers mean nothing')
    text = table.tables(rows, columns, cells, KS, first)
    skipped = sum(r['status'] == 'skipped' for r in trained)
    print(f'\n{text}\n')
    for note in notes:
        print(note)
    print(f'{len(trained)} runs ({skipped} skipped: trained before), {seconds:.0f} s')
    plot = os.path.join(out, 'study.png')
    with atomic_path(plot) as tmp:
        table.plot(tmp, rows, columns, cells, KS[0], f'Study ({s["size"]} size): top-{KS[0]} '
                   f'invariance, 95 % intervals')
    markdown = '\n\n'.join([
        '# Study: ' + ('crop-scale ablation' if args.ablation else
                       'MoCo v2 on frames vs FTI vs Region Tracker'),
        table.tables(rows, columns, cells, KS, first, markdown=True),
        '\n'.join(f'- {note}' for note in notes), '![study](study.png)'])
    with atomic_path(os.path.join(out, 'study.md')) as tmp:
        with open(tmp, 'w') as handle:
            handle.write(markdown + '\n')
    write_json(os.path.join(out, 'study.json'), {
        'settings': {k: v for k, v in s.items()}, 'ablation': args.ablation,
        'eval_sets': [{'key': e.key, 'kind': e.kind, 'root': e.root} for e in eval_sets],
        'labelled': args.labelled, 'top_k': list(KS), 'rows': rows, 'columns': columns,
        'columns_read': picked, 'interval': 't over seeds' if s['seeds'] > 1 else
        'bootstrap (one seed)', 'cells': cells, 'runs': records})
    print(f"written: {os.path.join(out, 'study.md')}, study.json, study.png")
