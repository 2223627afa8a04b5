"""The study's invariance score (Purushwalkam & Gupta 2020; the authors' measure_invariances.py).

A neuron is invariant to a transformation when, once it fires on one image of a *set* (images
that differ only by that transformation), it keeps firing on the set's other images. With
``h`` the (N, D) features, a set id and a target ("class") per image:

1. C = number of targets; firing percentile p = min(100 (1 - 1/C), 95).
2. idx = floor(N p / 100); t+_j = idx-th smallest activation of neuron j, t-_j = idx-th largest.
3. Global firing rate G_j = mean over images of [h_j >= t+_j].
4. For every set z with at least 3 images: n_j(z) = max(#{h_j > t+_j}, #{h_j < t-_j}) over z
   (the better sign); only sets with n_j(z) > 0 count for neuron j.
5. Local firing L_yj = mean over the counted sets z of target y of n_j(z) / |z| (0 when there
   is none: a target without any set of >= 3 images scores 0 yet counts in C and step 6, as
   in the authors' code).
6. I_yj = L_yj / G_j; per target the mean of the K largest I_yj; the mean over targets,
   times (100 - p). Reported for K = 10 and K = 25.

The strict/non-strict comparisons (``>=`` for G, ``>``/``<`` for the set counts) are the
authors'. Work is split into column blocks (neurons) run on a thread pool; NumPy releases the
GIL in the sorts, comparisons and reductions.
"""
import concurrent.futures
import dataclasses
import threading

import numpy as np
import torch

from fastssl_common.errors import UserError

REPORTED_K = (10, 25)
MIN_SET_SIZE = 3
# Column blocks of about this many bytes fit under glibc's mmap threshold, so the per-thread
# scratch buffers are reused instead of being page-faulted in afresh for every block.
_BLOCK_BYTES = 16 << 20


@dataclasses.dataclass
class InvarianceScore:
    """``scores[K]``: the invariance score for top-K; ``per_target[K]``: the per-target top-K
    means (before the (100 - p) factor), in the order of ``targets``."""
    scores: dict
    per_target: dict
    targets: list
    firing_percentile: float
    num_images: int
    num_sets: int
    num_small_sets: int
    num_targets_without_sets: int

    def as_dict(self):
        """Plain values (K keys stay ints; ``json`` writes them as strings)."""
        return {'scores': dict(self.scores),
                'per_target': {k: [float(x) for x in v] for k, v in self.per_target.items()},
                'targets': [str(t) for t in self.targets],
                'firing_percentile': self.firing_percentile, 'num_images': self.num_images,
                'num_sets': self.num_sets, 'num_small_sets': self.num_small_sets,
                'num_targets_without_sets': self.num_targets_without_sets}


def firing_percentile(num_targets):
    """p = min(100 (1 - 1/C), 95), with the authors' floating-point expression."""
    return min((1.0 - 1.0 / num_targets) * 100, 95)


def invariance_score(features, set_ids, targets, ks=REPORTED_K, workers=None):
    """The invariance score of ``features`` over the given sets.

    features: (N, D) float array or CPU tensor; row i is image i's global-pooled features.
    set_ids: (N,) hashable per image (images of one set differ only by the transformation).
    targets: (N,) hashable per image (the class the invariance is conditioned on); every image
        of one set must have the same target.
    ks: the top-K neuron counts to report (each at most D).
    workers: threads over column blocks (default: torch's intra-op thread count).
    Returns an :class:`InvarianceScore`. Raises UserError for fewer than two targets, no set
    of at least 3 images at all, a set spanning targets, non-finite features.
    """
    h = _as_float32_matrix(features)
    n, d = h.shape
    layout = _SetLayout(np.asarray(set_ids), np.asarray(targets), n)
    too_large = [k for k in ks if not 1 <= k <= d]
    if too_large:
        raise UserError(f'top-K of {too_large[0]} neurons needs 1 <= K <= {d} '
                        f'(the features have {d} neurons)')
    p = firing_percentile(len(layout.target_names))
    idx = int((n * p) // 100)
    stats = _BlockStatistics(h, layout, idx)
    columns = _column_blocks(n, d)
    workers = workers or torch.get_num_threads()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(stats.run, columns))  # list() re-raises a worker's exception here
    # 0/(0 + 1e-20) = 0: a neuron no counted set of a target fires for has local firing 0.
    local = stats.local_sum / (stats.local_count + 1e-20)
    ratio = local / stats.global_rate[None, :]
    ranked = -np.sort(-ratio, axis=1)
    per_target = {k: ranked[:, :k].mean(axis=1) for k in ks}
    return InvarianceScore(
        scores={k: float(per_target[k].mean() * (100 - p)) for k in ks},
        per_target=per_target, targets=layout.target_names, firing_percentile=float(p),
        num_images=n, num_sets=layout.num_sets, num_small_sets=layout.num_small_sets,
        num_targets_without_sets=layout.num_targets_without_sets)


def check_sets(set_ids, targets):
    """Validate sets and targets without features (the same UserErrors as the score), so a
    bad dataset fails before any feature extraction."""
    set_ids = np.asarray(set_ids)
    _SetLayout(set_ids, np.asarray(targets), len(set_ids))


def _as_float32_matrix(features):
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    h = np.ascontiguousarray(features, dtype=np.float32)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise UserError(f'features must be a non-empty (images, neurons) matrix, got shape '
                        f'{tuple(h.shape)}')
    return h


class _SetLayout:
    """Image order for the set counts: the images of sets with >= 3 images first, grouped by
    set, sets grouped by target (so per-set and per-target sums are contiguous segments)."""

    def __init__(self, set_ids, targets, n):
        if set_ids.shape != (n,) or targets.shape != (n,):
            raise UserError(f'need one set id and one target per image: {n} images, '
                            f'{set_ids.size} set ids, {targets.size} targets')
        self.target_names, target_of_image = np.unique(targets, return_inverse=True)
        self.target_names = self.target_names.tolist()
        if len(self.target_names) < 2:
            raise UserError(f'the invariance score needs at least two targets, found '
                            f'{len(self.target_names)} ({self.target_names[:1]})')
        set_names, set_of_image = np.unique(set_ids, return_inverse=True)
        set_names = set_names.tolist()
        set_sizes = np.bincount(set_of_image, minlength=len(set_names))
        set_target = np.full(len(set_names), -1)
        set_target[set_of_image] = target_of_image
        mixed = np.flatnonzero(set_target[set_of_image] != target_of_image)
        if mixed.size:
            z = set_of_image[mixed[0]]
            raise UserError(f'set {set_names[z]!r} spans targets '
                            f'{self.target_names[set_target[z]]!r} and '
                            f'{self.target_names[target_of_image[mixed[0]]]!r}')
        kept = set_sizes >= MIN_SET_SIZE
        self.num_sets, self.num_small_sets = int(kept.sum()), int((~kept).sum())
        if not self.num_sets:
            raise UserError(f'no target has a set of at least {MIN_SET_SIZE} images')
        self.num_targets_without_sets = len(self.target_names) - np.unique(
            set_target[kept]).size
        # Sets ordered by (target, set); small sets last (they only enter t+-, G).
        set_rank = np.lexsort((np.arange(len(set_names)), set_target, ~kept))
        rank_of_set = np.empty_like(set_rank)
        rank_of_set[set_rank] = np.arange(len(set_rank))
        self.order = np.argsort(rank_of_set[set_of_image], kind='stable')
        self.order_torch = torch.from_numpy(self.order)
        counted = set_rank[:self.num_sets]
        self.counted_images = int(set_sizes[counted].sum())
        self.set_sizes = set_sizes[counted].astype(np.float64)
        # The narrowest counter that holds the largest set: narrower sums are faster.
        self.count_dtype = np.uint16 if set_sizes.max() < 2 ** 16 else np.int64
        self.set_starts = np.concatenate(([0], np.cumsum(set_sizes[counted])[:-1]))
        ordered = set_target[counted]
        self.target_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        # Rows of the per-target sums; targets without a counted set keep L = 0.
        self.counted_targets = ordered[self.target_starts]


class _BlockStatistics:
    """Per column block: thresholds, global firing, and the per-target sums of step 5."""

    def __init__(self, h, layout, idx):
        n, d = h.shape
        c = len(layout.target_names)
        self.h, self.layout, self.idx = h, layout, idx
        self.h_torch = torch.from_numpy(h)
        self.global_rate = np.empty(d)
        self.local_sum = np.zeros((c, d))
        self.local_count = np.zeros((c, d))
        self._scratch = threading.local()

    def _buffers(self, width):
        s = self._scratch
        if getattr(s, 'width', None) != width:
            n = self.h.shape[0]
            s.width = width
            s.gathered = torch.empty((n, width))
            s.block = np.empty((width, n), np.float32)
            s.block_torch = torch.from_numpy(s.block)
            s.sorted = np.empty((width, n), np.float32)
            s.fired = np.empty((width, self.layout.counted_images), bool)
        return s

    def run(self, cols):
        h, layout, idx = self.h, self.layout, self.idx
        n = h.shape[0]
        buf = self._buffers(cols.stop - cols.start)
        # Rows of `block` are neurons (contiguous), columns images in the layout's order.
        # (torch's gather and transposing copy are about twice NumPy's take + copyto here.)
        torch.index_select(self.h_torch[:, cols], 0, layout.order_torch, out=buf.gathered)
        buf.block_torch.copy_(buf.gathered.T)
        # A full (SIMD) sort, not a selection: NumPy's introselect slows down ten-fold on the
        # many exact ties of ReLU features (dead neurons, zeros), the sort does not.
        np.copyto(buf.sorted, buf.block)
        buf.sorted.sort(axis=1)
        if not np.isfinite(buf.sorted[:, [0, -1]]).all():  # NaN sorts last
            raise UserError(f'features contain NaN or infinite values (neurons '
                            f'{cols.start}..{cols.stop - 1})')
        t_pos = buf.sorted[:, idx].copy()
        t_neg = buf.sorted[:, n - 1 - idx].copy()  # the idx-th value in descending order
        self.global_rate[cols] = np.count_nonzero(buf.block >= t_pos[:, None], axis=1) / n
        counted = buf.block[:, :layout.counted_images]
        np.greater(counted, t_pos[:, None], out=buf.fired)
        above = np.add.reduceat(buf.fired, layout.set_starts, axis=1, dtype=layout.count_dtype)
        np.less(counted, t_neg[:, None], out=buf.fired)
        below = np.add.reduceat(buf.fired, layout.set_starts, axis=1, dtype=layout.count_dtype)
        fires = np.maximum(above, below)
        fraction = fires / layout.set_sizes[None, :]
        rows = layout.counted_targets
        self.local_sum[rows, cols] = np.add.reduceat(fraction, layout.target_starts, axis=1).T
        self.local_count[rows, cols] = np.add.reduceat(fires > 0, layout.target_starts, axis=1,
                                                    dtype=np.int64).T


def _column_blocks(n, d):
    width = int(np.clip(_BLOCK_BYTES // (4 * n), 1, 256))
    return [slice(c, min(c + width, d)) for c in range(0, d, width)]
