"""The study's steps, each through the product's own commands and each skipped when its output
is already there: the .betons (writers), a training run per (row, seed) (``train.py``,
resumed with ``--train.resume=true`` when it stopped), an untrained network per seed, and the
evaluations (``eval.py invariance``, ``eval.py knn``/``linear``), one JSON per checkpoint and
set.

The commands run in this process (their ``main`` with an argv): importing torch and FFCV
once instead of once per step saves tens of seconds per step on a small machine. Each step's
output goes to a log file under ``OUT/logs`` named before the step starts (``tail -f`` it).
"""
import contextlib
import dataclasses
import json
import os
import time

from fastssl_common.atomic import atomic_path, write_json
from fastssl_common.errors import UserError

DONE = 'study_done.json'          # in a run folder: the run finished (and how)
CHECKPOINT = 'checkpoint_last.pt'


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
    """The exit status of a product command's ``main(argv)``; a usage exit (argparse,
    ``--help``) is a status too."""
    try:
        return main(argv) or 0
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


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
    if code:
        print(f'error: training {run.name} stopped with exit status {code} (log: '
              f'{out}/logs/train-{run.name}.log); run the same command again to resume it')
        raise SystemExit(code)
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
    ``eval.py invariance`` call for those not evaluated before, split into one JSON each."""
    from fastssl import eval_command
    folder = os.path.join(out, 'evals', eval_set.key)
    os.makedirs(folder, exist_ok=True)
    pending = [(n, p) for n, p in checkpoints
               if not os.path.isfile(os.path.join(folder, f'{n}.json'))]
    if pending:
        print(f'== invariance on {eval_set.key}: {len(pending)} checkpoint(s)', flush=True)
        batch = os.path.join(folder, 'last_batch.json')
        argv = ['invariance', f'--invariance.kind={eval_set.kind}',
                f'--invariance.root={eval_set.root}',
                '--invariance.checkpoints=' + ','.join(f'{n}={p}' for n, p in pending),
                '--invariance.top_k=10,25', '--invariance.reference=false',
                f"--invariance.bootstrap={s['bootstrap']}", f'--invariance.device={s["device"]}',
                f'--invariance.output={batch}']
        with logged(out, f'invariance-{eval_set.key}'):
            code = command(eval_command.main, argv)
        if code:
            raise UserError(f'eval.py invariance on {eval_set.root} failed (exit status '
                            f'{code}); see {out}/logs/invariance-{eval_set.key}.log')
        with open(batch) as handle:
            doc = json.load(handle)
        for name, _ in pending:
            write_json(os.path.join(folder, f'{name}.json'),
                       {**{k: v for k, v in doc.items() if k not in ('results', 'checkpoints')},
                        'checkpoint': next(c for c in doc['checkpoints'] if c['name'] == name),
                        'results': [r for r in doc['results'] if r['checkpoint'] == name]})
        os.remove(batch)
    else:
        print(f'== invariance on {eval_set.key}: evaluated before')
    results = {}
    for name, _ in checkpoints:
        with open(os.path.join(folder, f'{name}.json')) as handle:
            results[name] = json.load(handle)['results']
    return results


def evaluate_downstream(out, labelled, checkpoints, s):
    """{name: top-1 %} of each checkpoint's ``eval.py knn`` (or ``linear``) on the labelled
    .betons ``labelled`` = (train, val); one JSON each, skipped when written before."""
    from fastssl import eval_command
    probe = s['probe']
    folder = os.path.join(out, 'evals', f'downstream_{probe}')
    os.makedirs(folder, exist_ok=True)
    top1 = {}
    for name, path in checkpoints:
        result = os.path.join(folder, f'{name}.json')
        if not os.path.isfile(result):
            print(f'== downstream {probe}: {name}', flush=True)
            argv = [probe, f'--eval.checkpoint={path}', f'--eval.train_path={labelled[0]}',
                    f'--eval.val_path={labelled[1]}', f"--eval.resolution={s['resolution']}",
                    f"--eval.device={s['device']}", f'--eval.output={result}']
            with logged(out, f'{probe}-{name}'):
                code = command(eval_command.main, argv)
            if code:
                raise UserError(f'eval.py {probe} of {name} failed (exit status {code}); see '
                                f'{out}/logs/{probe}-{name}.log')
        with open(result) as handle:
            top1[name] = json.load(handle)['top1']
    return top1


def labelled_split(source):
    """``--labelled`` checked: ('TRAIN.beton', 'VAL.beton') as given (one .beton serves as
    both: not held out), or for an image folder its (train, val) list lines, every 5th image
    of each class to val; UserError when it does not exist, a .beton is not a readable one
    with images and labels, or a folder has no classes."""
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
    seen, lists = {}, ([], [])
    for sample in find_images(source).samples:
        if sample.label < 0:
            raise UserError(f'--labelled {source} is not in the ImageFolder layout '
                            f'(DIR/<class>/<image>): {sample.path} has no class')
        index = seen[sample.label] = seen.get(sample.label, -1) + 1
        lists[index % 5 == 4].append(f'{os.path.abspath(sample.path)} {sample.label}')
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
    written with writers/write_images.py."""
    if isinstance(split[0], str):
        return split
    from writers import write_images
    data = os.path.join(out, 'data')
    paths = (os.path.join(data, 'labelled_train.beton'), os.path.join(data, 'labelled_val.beton'))
    if all(os.path.isfile(p) for p in paths):
        return paths
    lists = split
    print(f'== writing labelled .betons from {source}: {len(lists[0])} train, '
          f'{len(lists[1])} val images', flush=True)
    os.makedirs(data, exist_ok=True)
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
    return paths
