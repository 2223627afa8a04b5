"""The invariance monitor of a training run (``logging.invariance_every``): the invariance score
(``fastssl.invariance``, the score of ``eval.py invariance``) of the query backbone, measured
between epochs and logged as ``invariance/<transformation>/top10`` and ``.../top25``, with the
seconds it took as ``invariance/seconds``.

The sets are ``logging.invariance_sets``, a folder in any layout ``eval.py invariance`` reads
(``fastssl.invariance_data``), or by default rendered data: the writer's command
(``writers/render_invariance_sets.py``) renders it once into ``run_dir/invariance_sets``, in a
child process as a user would run it (fastssl does not import writers/), and a resumed run
reads it back. Rendered data has one measurement per (transformation, magnitude); the monitor
scores the widest magnitude of each transformation.

Features come from the backbone in eval mode (BatchNorm reads its running statistics and
updates nothing), without autocast (as ``eval.py invariance``: bf16 rounding makes ties at the
score's thresholds) and draw no random numbers, so the training that follows is exactly the
one without the monitor; the backbone's mode is restored after.
"""
import os
import subprocess
import sys
import time

import numpy as np
import torch

from fastssl_common.errors import UserError
from fastssl_common.formats import RENDERED_LABEL, RENDERED_MANIFEST

from .invariance import invariance_score
from .invariance_data import read_dataset
from .invariance_data.images import image_batches
from .invariance_settings import REPORTED_K
from .knn import extract_features

KEY = 'logging.invariance_sets'
RENDERED_DIR = 'invariance_sets'   # in the run folder
# The demo's rendered sets (scripts/demo_invariance.sh): 24 objects give every magnitude level
# enough images that the firing images are not one set's (4 objects sit at the score's
# ceiling, docs/evaluation.md), at 64 px.
RENDER_ARGS = ('--objects', '24', '--instances', '4', '--per-set', '3', '--size', '64',
               '--seed', '0')


def resolve_kind(kind, root):
    """'auto': rendered data when ``root`` holds its manifest, else the generic layout."""
    if kind != 'auto':
        return kind
    return 'rendered' if os.path.isfile(os.path.join(root, RENDERED_MANIFEST)) else 'folders'


def read_sets(root, kind='auto', key=KEY):
    """The checked :class:`InvarianceData` of ``root``; UserError naming ``key`` when it is
    not a folder or holds no scorable set."""
    if not os.path.isdir(root):
        raise UserError(f'{key}: {root} is not a folder of invariance sets')
    try:
        return read_dataset(resolve_kind(kind, root), root).check()
    except UserError as err:
        raise UserError(f'{key}={root}: {err}') from None


def render_default_sets(run_dir):
    """The path of the default rendered data in ``run_dir``, rendered first when absent (a
    resumed run finds it; the writer renames its output into place only when complete)."""
    out = os.path.join(run_dir, RENDERED_DIR)
    if not os.path.exists(out):
        # the writers of this installation: they sit next to the fastssl package
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (here, os.environ.get('PYTHONPATH')) if p)
        done = subprocess.run([sys.executable, '-m', 'writers.render_invariance_sets', out,
                               *RENDER_ARGS], capture_output=True, text=True,
                              env={**os.environ, 'PYTHONPATH': path})
        if done.returncode:
            reason = (done.stderr.strip().splitlines() or [f'exit status {done.returncode}'])
            raise UserError(f'{KEY}="" renders {RENDERED_LABEL} into {out}, which failed: '
                            f"{reason[-1].removeprefix('error: ')}")
    return out


def widest(measurements):
    """One measurement per transformation: the largest magnitude (or the only one)."""
    out = {}
    for m in measurements:
        best = out.get(m.transformation)
        if best is None or (m.magnitude or 0) > (best.magnitude or 0):
            out[m.transformation] = m
    return list(out.values())


class InvarianceMonitor:
    """Scores a backbone on ``data`` (:class:`InvarianceData`): :meth:`measure`."""

    def __init__(self, data, batch_size, num_workers=0, channels_last=True):
        self.data = data
        self.measurements = widest(data.measurements)
        # only the images of the scored measurements go through the backbone (rendered data:
        # the intermediate magnitudes' images are left out)
        self.rows = np.unique(np.concatenate([m.rows for m in self.measurements]))
        self.batch_size, self.workers = batch_size, num_workers or None
        self.channels_last = channels_last

    def measure(self, encoder, device):
        """``invariance/<transformation>/top<K>`` and ``invariance/seconds`` of ``encoder``
        (a ``fastssl.encoder.Encoder``: its pooled backbone features)."""
        start = time.perf_counter()
        was_training = encoder.training
        encoder.eval()
        try:
            batches = image_batches(self.data.images, self.rows, self.batch_size,
                                    workers=self.workers)
            features, _ = extract_features(encoder.features, batches, device,
                                           self.channels_last, l2_normalize=False)
        finally:
            encoder.train(was_training)
        scalars = {}
        for m in self.measurements:
            rows = torch.from_numpy(np.searchsorted(self.rows, m.rows))
            score = invariance_score(features[rows], m.set_ids, m.targets, REPORTED_K)
            scalars.update({f'invariance/{m.transformation}/top{k}': value
                            for k, value in score.scores.items()})
        scalars['invariance/seconds'] = time.perf_counter() - start
        return scalars

    def summary(self, scalars):
        """One line: the top-10 score per transformation and the seconds."""
        k = REPORTED_K[0]
        scores = ', '.join(f'{t} {scalars[f"invariance/{t}/top{k}"]:.1f}'
                           for t in (m.transformation for m in self.measurements))
        return (f'invariance top-{k} ({self.data.dataset}): {scores} '
                f"({scalars['invariance/seconds']:.1f} s)")
