"""The study's steps, each through the product's own commands and each skipped when its output
is already there: the .betons (writers), a training run per (row, seed) (``train.py``,
resumed with ``--train.resume=true`` when it stopped), an untrained network per seed, and the
evaluations (``eval.py invariance``, ``eval.py knn``/``linear``), one JSON per checkpoint and
set, reused only when made on the same set or labelled .betons.

The commands run in this process (their ``main`` with an argv): importing torch and FFCV
once instead of once per step saves tens of seconds per step on a small machine. Each step's
output goes to a log file under ``OUT/logs`` named before the step starts (``tail -f`` it).
"""
import contextlib
import dataclasses
import glob
import json
import os
import shutil
import sys
import time

from fastssl_common.atomic import atomic_path, write_json
from fastssl_common.errors import UserError

DONE = 'study_done.json'          # in a run folder: the run finished (and how)
CHECKPOINT = 'checkpoint_last.pt'
VAL_EVERY = 5                      # an image folder's every 5th image of a class goes to val
LABELLED_SOURCE = 'labelled_source.json'   # in OUT/data: the folder the labelled .betons hold


@dataclasses.dataclass
class Run:
    """One training run: a table row trained under one seed."""
    row: str
    variant: str
    seed: int
    data: str                      # key of the .beton it trains on: 'frames' or 'pairs'
    extra: tuple = ()              # further train.py flags (the ablation's crop scale)

    @property
    def name(self):
        return f'{self.row}-s{self.seed}'


@contextlib.contextmanager
def logged(out, name):
    """Send the step's output to ``OUT/logs/NAME.log`` (said before it starts)."""
    path = os.path.join(out, 'logs', f'{name}.log')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f'   log: {path}', flush=True)
    with open(path, 'a') as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        yield


def command(main, argv):
    """The exit status of a product command's ``main(argv)``, as on its own command line: a
    usage exit (argparse, ``--help``) is a status too, and a UserError is its one line (in the
    step's log) and status 2, so that the study's own line can name the step and its log."""
    try:
        return main(argv) or 0
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------- data

def write_data(out, videos, s, need_pairs, proposals):
    """{'frames': path, 'pairs': path} of the .betons (written once; the writers are atomic,
    so a .beton that exists is complete)."""
    from writers import write_video_frames, write_video_pairs
    data = os.path.join(out, 'data')
    os.makedirs(data, exist_ok=True)
    paths = {'frames': os.path.join(data, 'frames.beton')}
    common = ['--max-resolution', str(s['max_resolution']), '--workers', str(s['workers'])]
    steps = [('frames', write_video_frames.main,
              [videos, paths['frames'], '--stride', str(s['stride']), *common])]
    if need_pairs:
        # one pairs file for FTI and the Region Tracker: the same pairs, with tracked regions
        name = 'pairs_rt' if proposals else 'pairs'
        paths['pairs'] = os.path.join(data, f'{name}.beton')
        extra = ['--proposals', str(s['proposals'])] if proposals else []
        # a gap K pairs every K-th frame with the frame K later; a range [A, B] pairs every
        # A-th frame with one A..B later
        gap = (['--gap-range', *map(str, s['gap'])] if isinstance(s['gap'], list)
               else ['--gap', str(s['gap'])])
        steps.append(('pairs', write_video_pairs.main,
                      [videos, paths['pairs'], *gap, *common, *extra]))
    for key, main, argv in steps:
        if os.path.isfile(argv[1]):
            print(f'== {key}: {argv[1]} (written before)')
            continue
        print(f'== writing {key}: {argv[1]}', flush=True)
        with logged(out, f'write-{key}'):
            code = command(main, argv)
        if code:
            raise UserError(f'writing {argv[1]} failed (exit status {code}); see '
                            f'{out}/logs/write-{key}.log')
    return paths


def samples_per_epoch(path, variant):
    """Samples one epoch of ``variant`` loads from ``path`` (rt: the tracked pairs only)."""
    from loaders.pair_loader import open_beton, tracked_pairs
    if variant == 'rt':
        return int(tracked_pairs(path).sum())
    return int(open_beton(path, ()).num_samples)


def epochs_for(budget, samples, batch):
    """(epochs, pairs seen): the whole epochs closest to ``budget`` pairs (at least one), an
    epoch being the full batches of ``samples`` (the loader drops the last partial one)."""
    per_epoch = samples // batch * batch
    epochs = max(1, round(budget / per_epoch))
    return epochs, epochs * per_epoch


# ---------------------------------------------------------------------------- training

def train(out, run, argv):
    """Train ``run`` (skipped when done, resumed when it stopped); returns
    ('skipped' | 'trained' | 'resumed', checkpoint) or raises SystemExit with train.py's
    status when the run was stopped (preemption: rerun the study to resume)."""
    from fastssl import train_command
    run_dir = run_folder(out, run)
    checkpoint = os.path.join(run_dir, CHECKPOINT)
    if os.path.isfile(os.path.join(run_dir, DONE)) and os.path.isfile(checkpoint):
        print(f'== {run.name}: skipped (trained before: {checkpoint})')
        return 'skipped', checkpoint
    resume = os.path.isfile(checkpoint)
    print(f"== {'resuming' if resume else 'training'} {run.name}", flush=True)
    argv = [*argv, f'--train.run_dir={run_dir}', f'--train.resume={str(resume).lower()}']
    start = time.perf_counter()
    with logged(out, f'train-{run.name}'):
        code = command(train_command.main, argv)
    log = f'{out}/logs/train-{run.name}.log'
    if code > 128:   # 128 + a signal: stopped after saving, so a rerun resumes it
        print(f'error: training {run.name} stopped with exit status {code} (log: {log}); run '
              f'the same command again to resume it')
        raise SystemExit(code)
    if code:
        raise UserError(f'training {run.name} failed (exit status {code}); see {log}')
    seconds = time.perf_counter() - start
    write_json(os.path.join(run_dir, DONE), {'run': run.name, 'argv': argv,
                                             'seconds': seconds})
    print(f'   done in {seconds:.0f} s: {checkpoint}')
    return ('resumed' if resume else 'trained'), checkpoint


def run_folder(out, run):
    return os.path.join(out, 'runs', run.row, f'seed{run.seed}')


def random_init(out, arch, seed):
    """A torchvision state dict of ``arch`` as initialised under ``seed`` (what
    ``eval.py invariance``'s random_init row is), written once."""
    import torch
    import torchvision
    path = os.path.join(out, 'random_init', f'{arch}_seed{seed}.pth')
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = getattr(torchvision.models, arch)(weights=None)
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
    return path


# ---------------------------------------------------------------------------- evaluation

def render(out, s):
    """The default invariance sets: rendered data, written once (atomically)."""
    from writers.render_invariance_sets import render_sets
    path = os.path.join(out, 'eval_sets', 'rendered')
    if not os.path.isdir(path):
        print(f'== rendering invariance sets: {path}', flush=True)
        with logged(out, 'render'):
            render_sets(path, objects=s['objects'], instances=s['instances'],
                        per_set=s['per_set'], size=s['render_size'], seed=0)
    return path


def evaluate_invariance(out, eval_set, checkpoints, s):
    """{name: [results]} of each (name, path) in ``checkpoints`` on ``eval_set``; one
    ``eval.py invariance`` call for those not evaluated on this set before, split into one
    JSON each."""
    from fastssl import eval_command
    folder = os.path.join(out, 'evals', eval_set.key)
    os.makedirs(folder, exist_ok=True)
    # recorded in each JSON: the key names a kind or a folder's basename, not which set, so a
    # JSON is reused only when its root is this one
    root = os.path.abspath(eval_set.root)
    before = {n: read_json(os.path.join(folder, f'{n}.json')) for n, _ in checkpoints}
    others = sorted({d['root'] for d in before.values()
                     if d is not None and not same_path(d['root'], root)})
    pending = [(n, p) for n, p in checkpoints
               if before[n] is None or not same_path(before[n]['root'], root)]
    if pending:
        why = (f" (evaluated before on {', '.join(others)}, not on {root}: again)"
               if others else '')
        print(f'== invariance on {eval_set.key}: {len(pending)} checkpoint(s){why}',
              flush=True)
        batch = os.path.join(folder, 'last_batch.json')
        argv = ['invariance', f'--invariance.kind={eval_set.kind}',
                f'--invariance.root={root}',
                '--invariance.checkpoints=' + ','.join(f'{n}={p}' for n, p in pending),
                '--invariance.top_k=10,25', '--invariance.reference=false',
                f"--invariance.bootstrap={s['bootstrap']}", f'--invariance.device={s["device"]}',
                f'--invariance.output={batch}']
        with logged(out, f'invariance-{eval_set.key}'):
            code = command(eval_command.main, argv)
        if code:
            raise UserError(f'eval.py invariance on {eval_set.root} failed (exit status '
                            f'{code}); see {out}/logs/invariance-{eval_set.key}.log')
        doc = read_json(batch)
        for name, _ in pending:
            write_json(os.path.join(folder, f'{name}.json'),
                       {**{k: v for k, v in doc.items() if k not in ('results', 'checkpoints')},
                        'checkpoint': next(c for c in doc['checkpoints'] if c['name'] == name),
                        'results': [r for r in doc['results'] if r['checkpoint'] == name]})
        os.remove(batch)
    else:
        print(f'== invariance on {eval_set.key}: evaluated before')
    return {name: read_json(os.path.join(folder, f'{name}.json'))['results']
            for name, _ in checkpoints}


def read_json(path):
    """The JSON document in ``path``, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def same_path(a, b):
    """True when ``a`` and ``b`` name the same file or folder (links and ``..`` resolved)."""
    return a is not None and os.path.realpath(a) == os.path.realpath(b)


def evaluate_downstream(out, labelled, checkpoints, s):
    """{name: top-1 %} of each checkpoint's ``eval.py knn`` (or ``linear``) on the labelled
    .betons ``labelled`` = (train, val); one JSON each, skipped when written before on the
    same .betons."""
    from fastssl import eval_command
    probe = s['probe']
    folder = os.path.join(out, 'evals', f'downstream_{probe}')
    os.makedirs(folder, exist_ok=True)
    top1 = {}
    for name, path in checkpoints:
        result = os.path.join(folder, f'{name}.json')
        doc = read_json(result)
        # the .betons' paths, as eval.py records them (--labelled may name others on a rerun);
        # labelled_betons removes these JSONs when it rewrites its own .betons
        if doc is None or not all(same_path(doc.get(f'{k}_path'), p)
                                  for k, p in zip(('train', 'val'), labelled)):
            why = (f" (evaluated before on {doc.get('train_path')}, {doc.get('val_path')}: "
                   f'again)' if doc else '')
            print(f'== downstream {probe}: {name}{why}', flush=True)
            argv = [probe, f'--eval.checkpoint={path}', f'--eval.train_path={labelled[0]}',
                    f'--eval.val_path={labelled[1]}', f"--eval.resolution={s['resolution']}",
                    f"--eval.device={s['device']}", f'--eval.output={result}']
            with logged(out, f'{probe}-{name}'):
                code = command(eval_command.main, argv)
            if code:
                raise UserError(f'eval.py {probe} of {name} failed (exit status {code}); see '
                                f'{out}/logs/{probe}-{name}.log')
            doc = read_json(result)
        top1[name] = doc['top1']
    return top1


def labelled_split(source):
    """``--labelled`` checked: ('TRAIN.beton', 'VAL.beton') as given (one .beton serves as
    both: not held out), or for an image folder its (train, val) list lines, every 5th image
    of each class to val; UserError when it does not exist, a .beton is not a readable one
    with images and labels, or a folder has no classes or a class too small to hold one val
    image."""
    parts = [p for p in source.split(',') if p]
    missing = [p for p in parts if not os.path.exists(p)]
    if missing or not parts:
        raise UserError(f'--labelled {source}: {missing[0] if missing else source} does not '
                        f'exist')
    if len(parts) > 2:
        raise UserError(f'--labelled {source}: give a folder, TRAIN.beton,VAL.beton or one '
                        f'.beton, not {len(parts)} paths')
    # a file cannot be an image folder: it is a .beton, whatever its name
    if len(parts) == 2 or source.endswith('.beton') or os.path.isfile(source):
        for path in parts:
            check_labelled_beton(source, path)
        return parts[0], parts[-1]
    from writers.image_sources import find_images
    found = find_images(source)
    seen, lists = {}, ([], [])
    for sample in found.samples:
        if sample.label < 0:
            # images beside the class folders are what unlabels a set that has them
            stray = found.loose[0] if found.loose else sample.path
            raise UserError(f'--labelled {source} is not in the ImageFolder layout '
                            f'(DIR/<class>/<image>): {stray} has no class')
        count = seen[sample.label] = seen.get(sample.label, 0) + 1
        lists[count % VAL_EVERY == 0].append(f'{os.path.abspath(sample.path)} {sample.label}')
    small = [f'{found.classes[label]} ({n})' for label, n in sorted(seen.items())
             if n < VAL_EVERY]
    if small:
        raise UserError(f'--labelled {source}: every class needs at least {VAL_EVERY} images '
                        f'(every {VAL_EVERY}th goes to val), fewer in: {", ".join(small)}')
    return lists


def check_labelled_beton(source, path):
    """UserError naming ``--labelled`` unless ``path`` is a .beton that ``eval.py knn`` and
    ``linear`` can read: its header, size and the image and label fields (the eval loader's
    own check), and at least one sample. Checked now, not after the training."""
    from fastssl_common.formats import IMAGE, LABEL
    from loaders.pair_loader import open_beton
    if os.path.isdir(path):
        raise UserError(f'--labelled {source}: {path} is a folder, not a .beton')
    try:
        reader = open_beton(path, (IMAGE, LABEL), hint=' (write one with writers/write_images.py)')
    except UserError as err:
        raise UserError(f'--labelled {source}: {err}') from None
    if reader.num_samples == 0:
        raise UserError(f'--labelled {source}: {path} holds no samples')


def labelled_betons(out, source, split, s):
    """(train, val) .betons of ``--labelled``: as given, or an image folder's ``split``
    written with writers/write_images.py, kept while ``OUT/data/labelled_source.json`` says
    they were written from the same folder (written once both are complete), else rewritten
    and their downstream evaluations dropped."""
    if isinstance(split[0], str):
        return split
    from writers import write_images
    data = os.path.join(out, 'data')
    paths = (os.path.join(data, 'labelled_train.beton'), os.path.join(data, 'labelled_val.beton'))
    record = os.path.join(data, LABELLED_SOURCE)
    written = read_json(record)
    same = written is not None and same_path(written['source'], source)
    if same and all(os.path.isfile(p) for p in paths):
        return paths
    if not same and any(os.path.lexists(p) for p in paths):
        was = written['source'] if written else 'a folder not recorded'
        print(f'== labelled .betons in {data} were written from {was}, not {source}: '
              f'writing them again')
    remove_labelled(out, paths)   # the record first: an interrupted removal stays stale
    lists = split
    print(f'== writing labelled .betons from {source}: {len(lists[0])} train, '
          f'{len(lists[1])} val images', flush=True)
    os.makedirs(data, exist_ok=True)
    try:
        for path, lines in zip(paths, lists):
            with open(path + '.txt', 'w') as handle:
                handle.write('\n'.join(lines) + '\n')
            with logged(out, 'write-labelled'):
                code = command(write_images.main, [path + '.txt', path, '--max-resolution',
                                                   str(s['max_resolution']), '--workers',
                                                   str(s['workers'])])
            if code:
                raise UserError(f'writing {path} failed (exit status {code}); see '
                                f'{out}/logs/write-labelled.log')
        write_json(record, {'source': os.path.abspath(source)})
    except BaseException:   # Ctrl-C too: a train .beton without its val is not kept
        remove_labelled(out, paths)
        raise
    return paths


def remove_labelled(out, paths):
    """Remove the labelled .betons' record, the .betons with their sidecars and lists, and the
    downstream evaluations made on them."""
    data = os.path.dirname(paths[0])
    for path in (os.path.join(data, LABELLED_SOURCE),
                 *(p + suffix for p in paths for suffix in ('', '.json', '.txt'))):
        if os.path.lexists(path):
            os.remove(path)
    for folder in glob.glob(os.path.join(glob.escape(out), 'evals', 'downstream_*')):
        shutil.rmtree(folder)
