"""The report of ``benchmarks.train_step``: its tables, the ratios against the targets (judged
only when a GPU ran) and the loader threads each model needs."""
from benchmarks.common import print_machine
from benchmarks.train_step_sections import MODES

TARGETS = {'bf16_speedup': 2.5, 'data_wait': 0.05, 'preprocess': 0.10, 'vs_supervised': 0.85}
# a MoCo pair: query forward + backward (~3 forwards) + key forward = 4/3 supervised images
PAIR_PER_IMAGE = 0.75
DATA_WAIT_VARIANTS = ('mocov2', 'fti_rt')


def fmt(value, spec, missing='n/a'):
    return missing if value is None else format(value, spec)


def print_report(info, config, result):
    print()
    print_machine(info)
    print(f'config: {config}')
    print('\n(s) synthetic device-resident input, Trainer.train_step')
    print(f"{'model':<9} {'mode':<38} {'pairs/s':>9} {'ms/step':>9} {'GFLOP/pair':>10} "
          f"{'TFLOP/s':>8} {'of peak':>8} {'mem GiB':>8}")
    for row in result['synthetic']:
        if 'skipped' in row:
            print(f"{row['arch']:<9} {row['label']:<38} {'n/a (' + row['skipped'] + ')':>9}")
            continue
        peak = row.get('peak_fraction')
        share = 'n/a' if peak is None else f'{100 * peak:.1f}%'
        print(f"{row['arch']:<9} {row['label']:<38} {row['pairs_per_s']:9.1f} "
              f"{row['ms_per_step']:9.1f} {fmt(row.get('gflops_per_pair'), '10.1f'):>10} "
              f"{fmt(row.get('tflops'), '8.2f'):>8} {share:>8} "
              f"{fmt(row.get('peak_memory_gib'), '8.2f'):>8}")
    gpu = info['gpu'] is not None and config['device'].startswith('cuda')
    print('\n(c) supervised ceiling: same backbone, cross-entropy + SGD, same batch')
    for row in result['supervised']:
        print(f"{row['arch']:<9} {'supervised, ' + row['label']:<38} "
              f"{row['images_per_s']:9.1f} images/s "
              f"{row['ms_per_step']:9.1f} ms/step")
    print()
    for row in result['ratios']:
        target = (f"target >= {row['target']:.1f}  {'PASS' if row['pass'] else 'MISS'}"
                  if row['target'] is not None else '(target applies to a GPU)')
        print(f"{row['label']:<52} {row['value']:6.2f}x  {target}")
    pre = result['preprocess']
    print(f"\n(g) GPU-side preprocessing ({pre['arch']}, {MODES[pre['mode']][0]}): "
          f"{pre['preprocess_ms']:.1f} ms vs train step {pre['step_ms']:.1f} ms -> "
          f"{100 * pre['fraction']:.1f} % of the step  "
          + (f"target < {100 * TARGETS['preprocess']:.0f} %  "
             f"{'PASS' if pre['fraction'] < TARGETS['preprocess'] else 'MISS'}" if gpu
             else '(on this CPU device; target applies to a GPU)'))
    print(f"\n(l) real FFCV loader + {MODES[result['loaders'][0]['mode']][0]}, "
          f"{result['loaders'][0]['arch']}, {result['loaders'][0]['workers']} loader threads, "
          f"augment {result['loaders'][0]['placement']}")
    print(f"{'variant':<8} {'beton':<18} {'steps':>5} {'pairs/s':>9} {'data wait':>10} "
          f"{'(w/ epoch starts)':>17} {'loader alone':>13}")
    for row in result['loaders']:
        verdict = ''
        if gpu and row['variant'] in DATA_WAIT_VARIANTS:
            verdict = (f"  target < {100 * TARGETS['data_wait']:.0f} %  "
                       f"{'PASS' if row['data_wait_fraction'] < TARGETS['data_wait'] else 'MISS'}")
        print(f"{row['variant']:<8} {row['beton'][:18]:<18} {row['steps']:>5} "
              f"{row['pairs_per_s']:9.1f} {100 * row['data_wait_fraction']:9.1f}% "
              f"{100 * row['data_wait_with_epoch_starts']:16.1f}% "
              f"{row['loader_only_pairs_per_s']:13.1f}{verdict}")
    for need in result['loader_needs']:
        print(f"    {need['arch']} ({MODES[need['mode']][0]}) trains {need['pairs_per_s']:.0f} "
              f"pairs/s; the mocov2 loader gives {need['loader_pairs_per_s_per_thread']:.0f} "
              f"pairs/s per thread: keeping up needs ~{need['threads_needed']:.1f} threads")
    print(f"(m) largest batch that fits ({config['archs'][0]}, channels-last + bf16): "
          f"{fmt(result['largest_batch'], 'd', 'n/a (no GPU)')}")
    print(f"(y) host-device syncs in prepare_views + train_step: "
          f"bf16_cl: {fmt(pre['sync'], 's', 'n/a (no GPU)')}; "
          f"fp16_cl: {fmt(result['fp16_sync'], 's', 'n/a (no GPU)')}")
    profiled = result.get('profile')
    if profiled:
        kernels = (f"kernels fill {profiled['kernel_ms']:.1f} ms "
                   f"({100 * profiled['kernel_share']:.0f} %)"
                   if profiled['kernel_ms'] is not None else 'kernel time n/a (no GPU)')
        print(f"(p) profile, 3 steps of {config['archs'][0]}: {profiled['wall_ms']:.1f} ms, "
              f"{kernels}; top kernels in {profiled['path']}")


def ratio_rows(synthetic, supervised, gpu):
    rates = {(r['arch'], r['mode']): r['pairs_per_s'] for r in synthetic if 'pairs_per_s' in r}
    rows = []

    def add(label, ratio, value, target):
        target = target if gpu else None
        rows.append({'label': label, 'ratio': ratio, 'value': value, 'target': target,
                     'pass': None if target is None else value >= target})

    for arch in dict.fromkeys(r['arch'] for r in synthetic):
        for num, target in (('bf16_cl', TARGETS['bf16_speedup']), ('fp16_cl', None),
                            ('bf16_cl_compile', None)):
            if (arch, num) in rates and (arch, 'fp32') in rates:
                add(f'{arch}: {MODES[num][0]} / fp32 NCHW', f'{arch}:{num}/fp32',
                    rates[arch, num] / rates[arch, 'fp32'], target)
    for row in supervised:
        arch, mode = row['arch'], row['mode']
        if (arch, mode) in rates:
            add(f'{arch}: MoCo pairs/s / ({PAIR_PER_IMAGE} x supervised images/s), '
                f'{MODES[mode][0]}', f'{arch}:{mode}/supervised',
                rates[arch, mode] / (PAIR_PER_IMAGE * row['images_per_s']),
                TARGETS['vs_supervised'] if arch == 'resnet50' else None)
    return rows


def loader_needs(synthetic, loaders, workers):
    """Threads the mocov2 loader needs to feed each model at its synthetic rate."""
    mocov2 = [row for row in loaders if row['variant'] == 'mocov2']
    if not mocov2:
        return []
    per_thread = mocov2[0]['loader_only_pairs_per_s'] / workers
    return [{'arch': r['arch'], 'mode': r['mode'], 'pairs_per_s': r['pairs_per_s'],
             'loader_pairs_per_s_per_thread': per_thread,
             'threads_needed': r['pairs_per_s'] / per_thread}
            for r in synthetic if r['mode'] == mocov2[0]['mode'] and 'pairs_per_s' in r]
