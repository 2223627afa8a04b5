"""``eval.py invariance``: the study's invariance score of one or more backbones on a dataset
read with its protocol (GOT-10k, ALOI, Pascal3D+, generic set folders, rendered data).

    python eval.py invariance --invariance.kind=aloi_view --invariance.root=data/png2 \\
        --invariance.checkpoints=moco=moco_v2_200ep_pretrain.pth.tar,sup=resnet50.pth

Prints a table (rows: checkpoints and the ``random_init`` reference; columns: invariance
score for top-K neurons per measurement, each with its bootstrap confidence interval, letters
marking the differences that are not significant), and optionally writes JSON, TensorBoard
scalars, and for rendered data a plot of score vs transformation magnitude with error bars.
Images are decoded once and run through every backbone (channels-last, autocast on GPU); the
score is computed on the raw global-pooled features.
"""
import contextlib
import os
import textwrap

import torch
import torchvision
from torch import nn

from fastssl_common.atomic import ensure_writable_dir, output_folder, stop_signals_held, write_json
from fastssl_common.errors import UserError

from .config_loader import PathStr, UnsetVariable
from .device import resolve_device, resolve_precision
from .eval_outputs import PNG, check_output, within
from .invariance import invariance_score
from .invariance_data import read_dataset
from .invariance_data.images import image_batches
from .invariance_settings import Bootstrap
from .knn import extract_features
from .model_io import load_backbone


def run(settings):
    s = settings.invariance
    checkpoints = parse_checkpoints(s.checkpoints)
    ks = parse_ks(s.top_k)
    with contextlib.ExitStack() as folders:
        # made now: a run that fails removes those it made while they are still empty
        for folder in output_folders(s):
            folders.enter_context(output_folder(folder))
        check_outputs(s, [s.root] + [path for _, path in checkpoints])
        return measure(s, checkpoints, ks)


def measure(s, checkpoints, ks):
    """The scores of ``checkpoints`` (and the reference) on ``s.root``, reported as asked."""
    data = read_dataset(s.kind, s.root).check()
    if s.plot and all(m.magnitude is None for m in data.measurements):
        raise UserError(f'invariance.plot needs measurements with magnitudes (rendered data, '
                        f'kind=rendered); {s.kind} has none')
    device = resolve_device(s.device, 'invariance.device')
    dtype = resolve_precision(s.precision, device, 'invariance.precision')
    backbones = [load_backbone(path, s.arch, device, 'invariance.arch') for _, path in checkpoints]
    if s.reference:
        references = reference_backbones([b.arch for b in backbones], s.seed, device)
        for name, path in checkpoints:
            if name in references:
                raise UserError(f'invariance.checkpoints: {path} is named {name}, the name of '
                                f'the untrained reference: give it another (NAME=PATH)')
        checkpoints += [(name, None) for name in references]
        backbones += list(references.values())
    dims = [b.feature_dim for b in backbones]
    too_small = [k for k in ks if k > min(dims)]
    if too_small:
        raise UserError(f'invariance.top_k={too_small[0]} exceeds the {min(dims)} features of '
                        f'a backbone')
    size = s.resolution or data.images.size
    print(f'{data.dataset}: {len(data.images)} images, {len(data.measurements)} measurement(s);'
          f' extracting {size} px features with {len(backbones)} backbone(s) on {device}',
          flush=True)
    features = all_features(backbones, data.images, size, s, device, dtype)
    for (name, path), feats in zip(checkpoints, features):
        if not feats.isfinite().all():
            raise UserError(f'{path or name} gives NaN or infinite features on {data.dataset}'
                            f' (its weights are damaged, or the run diverged)')
    names = [name for name, _ in checkpoints]
    bootstrap = Bootstrap(s.bootstrap, s.confidence, s.seed, s.resample)
    results = []
    for name, feats in zip(names, features):
        for m in data.measurements:
            score = invariance_score(feats[m.rows], m.set_ids, m.targets, ks,
                                     bootstrap=bootstrap)
            if score.num_targets_without_sets:
                print(f"note: {name} {m.name}: {score.num_targets_without_sets} of "
                      f"{len(score.targets)} targets have no set of at least 3 images; they "
                      f"score 0 (as in the authors' code)")
            results.append({'checkpoint': name, 'measurement': m.name,
                            'transformation': m.transformation, 'magnitude': m.magnitude,
                            'unit': m.unit, **score.as_dict()})
    report(s, data, checkpoints, backbones, ks, size, results)
    return 0


def reference_backbones(archs, seed, device):
    """{name: backbone}: per architecture among ``archs``, the network as training starts it
    (torchvision's init, seeded) and never trained: 'random_init', or 'random_init_<arch>'
    when the checkpoints have several architectures."""
    distinct = list(dict.fromkeys(archs))
    out = {}
    for arch in distinct:
        with torch.random.fork_rng(devices=[]):   # the caller's RNG state stays as it was
            torch.manual_seed(seed)
            model = getattr(torchvision.models, arch)(weights=None)
        model.fc = nn.Identity()
        model.arch, model.source_format = arch, f'random init (seed {seed})'
        model.feature_dim = model.layer4[-1].conv1.in_channels
        out['random_init' if len(distinct) == 1 else f'random_init_{arch}'] = \
            model.to(device).eval()
    return out


def parse_checkpoints(text):
    """'a.pt,fti=runs/fti/checkpoint_last.pt' -> [(name, path)]; a name defaults to the run
    folder for ``checkpoint*`` files, else the file's stem (made unique: 'a', 'a#2'); a name
    given twice is refused."""
    out, seen, given = [], {}, set()
    for entry in (e.strip() for e in text.split(',')):
        if not entry:
            continue
        # An existing file is a path even when its name holds '='; else NAME=PATH.
        name, sep, path = ('', '', entry) if os.path.isfile(entry) else \
            (part.strip() for part in entry.partition('='))
        if not sep:
            path = entry
            stem = os.path.splitext(os.path.basename(path))[0].split('.')[0]
            parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
            name = parent if stem.startswith('checkpoint') and parent else stem
        elif not path:
            raise UserError(f"invariance.checkpoints: '{entry}' names no file after its '='")
        elif not name:
            raise UserError(f"invariance.checkpoints: '{entry}' gives no name before its '=' "
                            f"(NAME=PATH, or the path alone)")
        elif name in ('.', '..') or '/' in name or os.sep in name:
            # a name is a TensorBoard run folder inside invariance.run_dir
            raise UserError(f"invariance.checkpoints: the name of {path} must be a plain name, "
                            f"not '{name}' (it names a TensorBoard run in invariance.run_dir)")
        elif name in given:      # derived names are made unique; a given one is meant
            raise UserError(f"invariance.checkpoints names '{name}' twice: give each "
                            f"checkpoint its own name")
        else:
            given.add(name)
        try:        # expanded as every other path setting is (PathStr)
            path = PathStr().check(path)
        except UnsetVariable as err:
            raise err.refusal('invariance.checkpoints', path) from None
        if not os.path.isfile(path):   # a run folder given for its checkpoint: not "not found"
            raise UserError(f'invariance.checkpoints: checkpoint {path} is a folder, not a file'
                            if os.path.isdir(path) else
                            f'invariance.checkpoints: checkpoint not found: {path}')
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f'{name}#{seen[name]}', path))
    if not out:
        raise UserError('invariance.checkpoints names no checkpoint')
    return out


def parse_ks(text):
    try:
        ks = [int(k) for k in text.split(',') if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise UserError(f"invariance.top_k must be comma-separated positive integers, got "
                        f"'{text}'")
    twice = sorted({k for k in ks if ks.count(k) > 1})
    if twice:
        raise UserError(f"invariance.top_k lists {twice[0]} twice: '{text}'")
    return ks


def output_folders(s):
    """The folders the outputs go to."""
    files = [os.path.dirname(os.path.abspath(path)) for path in (s.output, s.plot) if path]
    return files + ([s.run_dir] if s.run_dir else [])


def check_outputs(s, inputs=()):
    """Fail before the work, not after it, when an output cannot be written or would replace
    one of the run's ``inputs`` (the dataset root, the checkpoints)."""
    if s.plot and not s.plot.lower().endswith('.png'):
        raise UserError(f'invariance.plot must end in .png: {s.plot}')
    for key, path in (('invariance.output', s.output), ('invariance.plot', s.plot)):
        # run() has made run_dir by now: the file would be refused as "a folder"
        if path and s.run_dir and os.path.realpath(path) == os.path.realpath(s.run_dir):
            raise UserError(f'{key} and invariance.run_dir are both {path}: give a file and a '
                            f'folder')
    check_output(s.output, 'invariance.output', inputs)
    check_output(s.plot, 'invariance.plot', inputs, PNG)
    if s.output and s.plot and os.path.realpath(s.output) == os.path.realpath(s.plot):
        raise UserError(f'invariance.output and invariance.plot are both {s.plot}: give two '
                        f'files')
    for source in filter(None, inputs):
        if s.run_dir and os.path.isdir(source) and within(s.run_dir, source):
            raise UserError(f'invariance.run_dir {s.run_dir} is inside {source}, an input of '
                            f'this run: give another folder')
        if s.run_dir and os.path.isfile(source) and within(source, s.run_dir):
            # its TensorBoard runs would land among those of the training run it came from
            raise UserError(f'invariance.run_dir {s.run_dir} holds {source}, an input of this '
                            f'run: give a folder of its own')
    for folder in output_folders(s):
        ensure_writable_dir(folder)


class _SideBySide(nn.Module):
    """Several backbones on one batch, features concatenated: images are decoded once."""

    def __init__(self, backbones):
        super().__init__()
        self.backbones = nn.ModuleList(backbones)

    def forward(self, x):
        return torch.cat([b(x).float() for b in self.backbones], dim=1)


def all_features(backbones, images, size, s, device, dtype):
    """-> one float32 (N, D_i) CPU tensor per backbone, rows in ImageList order."""
    model = _SideBySide(backbones).to(memory_format=torch.channels_last).eval()
    batches = image_batches(images, range(len(images)), s.batch_size, size,
                            s.num_workers or None)
    feats, rows = extract_features(model, batches, device, dtype=dtype, l2_normalize=False)
    assert torch.equal(rows, torch.arange(len(images)))   # batches keep the list's order
    return torch.split(feats, [b.feature_dim for b in backbones], dim=1)


def report(s, data, checkpoints, backbones, ks, size, results):
    from .invariance_report import curve_figure, log_tensorboard, save_figure, tables
    names = [name for name, _ in checkpoints]
    label = data.dataset if data.rendered else f'{data.dataset} ({data.root})'
    title = f'Invariance score on {label}, top-K neurons'
    print(tables(results, names, ks, title, data.rendered))
    references = [name for name, path in checkpoints if path is None]
    if references:
        print(textwrap.fill(f"{', '.join(references)}: the same architecture untrained "
                            f"(torchvision's init, seed {s.seed}): what a network scores "
                            f'without learning anything', 100, subsequent_indent='  '))
    figure = curve_figure(results, names, ks, data.dataset) if s.plot or s.run_dir else None
    if s.output:
        per_k = ('scores', 'ci_low', 'ci_high')
        doc = {'dataset': data.dataset, 'kind': s.kind, 'root': s.root, 'top_k': ks,
               'resolution': size,
               'bootstrap': {'resamples': s.bootstrap, 'confidence': s.confidence,
                             'seed': s.seed, 'unit': s.resample},
               'checkpoints': [{'name': name, 'path': path, 'arch': b.arch,
                                'source_format': b.source_format, 'feature_dim': b.feature_dim,
                                'reference': path is None}
                               for (name, path), b in zip(checkpoints, backbones)],
               'results': [{**r, **{key: {str(k): v for k, v in r[key].items()}
                                    for key in per_k}} for r in results]}
        if data.rendered:
            doc = {'label': data.dataset, **doc}
    # a stop (Ctrl-C, SIGTERM) while the outputs are written takes effect once all are: a
    # plot or TensorBoard runs without the JSON beside them would pass for a finished report
    with stop_signals_held():
        if s.plot and figure is not None:
            save_figure(figure, s.plot)
            print(f'plot ({data.dataset}): {s.plot}')
        if s.run_dir:
            log_tensorboard(s.run_dir, results, names, data.rendered, data.dataset, figure)
        if s.output:
            write_json(s.output, doc)
            print(f'results: {s.output}')
