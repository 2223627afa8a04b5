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

With a ``Bootstrap`` (:mod:`fastssl.invariance_settings`), the score also gets a confidence
interval from resampling the targets or the sets within each target (:func:`bootstrap_draws`
says exactly what is drawn; docs/evaluation.md how to read it). One module although longer
than 300 lines: the interval recombines the per-set sums of the score's own pass, so the two
must not drift apart.
"""
import concurrent.futures
import dataclasses
import math
import threading

import numpy as np
import threadpoolctl
import torch

from fastssl_common.errors import UserError

from .invariance_settings import REPORTED_K

MIN_SET_SIZE = 3
# Column blocks of about this many bytes fit under glibc's mmap threshold, so the per-thread
# scratch buffers are reused instead of being page-faulted in afresh for every block.
_BLOCK_BYTES = 16 << 20


@dataclasses.dataclass
class InvarianceScore:
    """``scores[K]``: the invariance score for top-K; ``per_target[K]``: the per-target top-K
    means (before the (100 - p) factor), in the order of ``targets``. With a bootstrap:
    ``ci[K]`` = (low, high), ``replicates[K]`` the (resamples,) resampled scores, and
    ``resampling`` how many targets had their sets resampled and how many were pooled."""
    scores: dict
    per_target: dict
    targets: list
    firing_percentile: float
    num_images: int
    num_sets: int
    num_small_sets: int
    num_targets_without_sets: int
    ci: dict = None
    replicates: dict = None
    resampling: dict = None

    def as_dict(self):
        """Plain values (K keys stay ints; ``json`` writes them as strings); the interval as
        ``ci_low``/``ci_high`` next to ``scores``."""
        interval = {} if self.ci is None else {
            'ci_low': {k: lo for k, (lo, _) in self.ci.items()},
            'ci_high': {k: hi for k, (_, hi) in self.ci.items()},
            'bootstrap': self.resampling}
        return {'scores': dict(self.scores), **interval,
                'per_target': {k: [float(x) for x in v] for k, v in self.per_target.items()},
                'targets': [str(t) for t in self.targets],
                'firing_percentile': self.firing_percentile, 'num_images': self.num_images,
                'num_sets': self.num_sets, 'num_small_sets': self.num_small_sets,
                'num_targets_without_sets': self.num_targets_without_sets}


def firing_percentile(num_targets):
    """p = min(100 (1 - 1/C), 95), with the authors' floating-point expression."""
    return min((1.0 - 1.0 / num_targets) * 100, 95)


def invariance_score(features, set_ids, targets, ks=REPORTED_K, workers=None, bootstrap=None):
    """The invariance score of ``features`` over the given sets.

    features: (N, D) float array or CPU tensor; row i is image i's global-pooled features.
    set_ids: (N,) hashable per image (images of one set differ only by the transformation).
    targets: (N,) hashable per image (the class the invariance is conditioned on); every image
        of one set must have the same target.
    ks: the top-K neuron counts to report (each at most D).
    workers: threads over column blocks (default: torch's intra-op thread count).
    bootstrap: a :class:`Bootstrap` for a confidence interval per score (None: no interval).
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
    stats = _BlockStatistics(h, layout, idx,
                             keep_set_counts=bootstrap is not None and bootstrap.unit == 'sets')
    columns = _column_blocks(n, d)
    workers = workers or torch.get_num_threads()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(stats.run, columns))  # list() re-raises a worker's exception here
        # 0/(0 + 1e-20) = 0: a neuron no counted set of a target fires for has local firing 0.
        local = stats.local_sum / (stats.local_count + 1e-20)
        ratio = local / stats.global_rate[None, :]
        ranked = -np.sort(-ratio, axis=1)
        per_target = {k: ranked[:, :k].mean(axis=1) for k in ks}
        scores = {k: float(per_target[k].mean() * (100 - p)) for k in ks}
        interval = {} if bootstrap is None else _bootstrap_interval(
            stats, layout, per_target, scores, ks, p, bootstrap, pool)
    return InvarianceScore(
        scores=scores, per_target=per_target, targets=layout.target_names,
        firing_percentile=float(p), num_images=n, num_sets=layout.num_sets,
        num_small_sets=layout.num_small_sets,
        num_targets_without_sets=layout.num_targets_without_sets, **interval)


def bootstrap_draws(set_ids, targets, bootstrap):
    """What each resample of the interval is made of, drawn as :func:`invariance_score` draws
    it: ``(strata, pool)``.

    strata: unit 'sets' only: one ``(target, set names, counts)`` per target with at least two
        counted sets (of >= 3 images), in target order; counts (resamples, sets) int: how
        often each set is in the resample (multinomial: the target's sets with replacement,
        as many as it has). Empty for unit 'targets'.
    pool: ``(target names, counts)``, counts (resamples, pooled targets): the targets drawn
        with replacement, as many as pooled, each with all its sets. Unit 'targets': every
        target. Unit 'sets': the targets with one counted set or none, whose sets cannot be
        resampled within the target (e.g. set = target, as in ALOI or the rendered curves):
        they are resampled among themselves (collapsed strata). None when no target is pooled.
    """
    layout = _SetLayout(np.asarray(set_ids), np.asarray(targets), len(set_ids))
    strata, (pooled, pool) = _draw(layout, bootstrap)
    names = layout.target_names
    return ([(names[y], [layout.counted_set_names[z] for z in range(seg.start, seg.stop)],
              counts) for y, seg, counts in strata],
            None if pool is None else ([names[y] for y in pooled], pool))


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
        # Strata of the within-target bootstrap: each target with >= 2 counted sets, as a
        # slice of the counted sets.
        self.counted_set_names = [set_names[z] for z in counted]
        ends = np.r_[self.target_starts[1:], self.num_sets]
        self.strata = [(int(y), slice(int(a), int(b)))
                       for y, a, b in zip(self.counted_targets, self.target_starts, ends)
                       if b - a >= 2]


class _BlockStatistics:
    """Per column block: thresholds, global firing, and the per-target sums of step 5."""

    def __init__(self, h, layout, idx, keep_set_counts=False):
        n, d = h.shape
        c = len(layout.target_names)
        self.h, self.layout, self.idx = h, layout, idx
        self.h_torch = torch.from_numpy(h)
        self.global_rate = np.empty(d)
        self.local_sum = np.zeros((c, d))
        self.local_count = np.zeros((c, d))
        # n_j(z) of every counted set, (sets, D): what the bootstrap recombines.
        self.set_counts = (np.empty((layout.num_sets, d), layout.count_dtype)
                           if keep_set_counts else None)
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
        if self.set_counts is not None:
            self.set_counts[:, cols] = fires.T
        fraction = fires / layout.set_sizes[None, :]
        rows = layout.counted_targets
        self.local_sum[rows, cols] = np.add.reduceat(fraction, layout.target_starts, axis=1).T
        self.local_count[rows, cols] = np.add.reduceat(fires > 0, layout.target_starts, axis=1,
                                                    dtype=np.int64).T


def _column_blocks(n, d):
    width = int(np.clip(_BLOCK_BYTES // (4 * n), 1, 256))
    return [slice(c, min(c + width, d)) for c in range(0, d, width)]


# ---------------------------------------------------------------------------- bootstrap
#
# Given the thresholds t+- and G, the score is (100 - p) times the mean over targets of the
# per-target top-K means T_y, and T_y depends on per-set sums only: L_yj = sum_z n_j(z)/|z| /
# sum_z [n_j(z) > 0] over the sets z of target y. So no resample recomputes features or
# thresholds:
# - unit 'targets': a resample is a (resamples x targets) count matrix times the C values T_y
#   (each target keeps all its sets): one matrix product, exact;
# - unit 'sets': per target, a (resamples x sets) count matrix times the (sets x 2D) per-set
#   terms [n_j(z)/|z|, n_j(z) > 0] kept from the score's pass; then step 7's top-K over the
#   neurons, which does not decompose: one partition (O(D)) per distinct resample.
# Held at their full-sample values because they do not decompose: the thresholds t+- (order
# statistics of all N images; recomputing them is a weighted order statistic per resample and
# neuron, a pass over N x D per resample, and changes every n_j(z)) and with them G, which they
# pin near (100 - p)/100. The interval is the spread from which targets or sets were sampled,
# not the thresholds' own noise. (Recomputing everything on duplicated images instead ties
# the copies at the thresholds, which the strict > and < then drop.)


def _draw(layout, bootstrap):
    """-> (strata [(target, counted-set slice, counts)], (pooled targets, counts or None)):
    multinomial draws in a fixed order (strata in target order, then the pool) from one
    generator seeded with ``seed``."""
    rng = np.random.default_rng(bootstrap.seed)
    b = bootstrap.resamples

    def resample(units):  # (b, units): how often each unit is among `units` drawn
        drawn = rng.integers(0, units, size=(b, units)) + units * np.arange(b)[:, None]
        return np.bincount(drawn.ravel(), minlength=b * units).reshape(b, units)
    within = layout.strata if bootstrap.unit == 'sets' else []
    strata = [(y, seg, resample(seg.stop - seg.start)) for y, seg in within]
    pooled = np.setdiff1d(np.arange(len(layout.target_names)), [y for y, _ in within])
    return strata, (pooled, resample(len(pooled)) if len(pooled) else None)


def _bootstrap_interval(stats, layout, per_target, scores, ks, p, bootstrap, pool):
    """-> {'ci', 'replicates', 'resampling'} for InvarianceScore. A replicate is (100 - p)
    times the mean over all targets of the per-target top-K means: recomputed for the strata,
    recombined from the fixed per-target values for the pooled targets."""
    strata, (pooled, counts) = _draw(layout, bootstrap)
    total = np.zeros((len(ks), bootstrap.resamples))
    if strata:
        # In parallel on the pool, each product on one BLAS thread: BLAS's own threads cost
        # more to wake than these (resamples x sets) @ (sets x 2D) products take.
        with threadpoolctl.threadpool_limits(1, user_api='blas'):
            for part in pool.map(lambda job: _stratum_top_k(stats, layout, *job[1:], ks),
                                 strata):
                total += part
    if counts is not None:
        fixed = np.stack([per_target[k][pooled] for k in ks])   # (len(ks), pooled targets)
        total += np.einsum('kt,bt->kb', fixed, counts)  # small: no BLAS threads to wake
    replicates = total * ((100 - p) / len(layout.target_names))
    return {'ci': {k: basic_interval(r, scores[k], bootstrap.confidence)
                   for k, r in zip(ks, replicates)},
            'replicates': dict(zip(ks, replicates)),
            'resampling': {**dataclasses.asdict(bootstrap),
                           'targets_resampled_within': len(strata),
                           'targets_pooled': int(len(pooled))}}


def _stratum_top_k(stats, layout, seg, counts, ks):
    """The top-K means of one target in every resample: (len(ks), resamples).

    counts: (resamples, m) how often each of the target's m counted sets is drawn. When there
    are fewer possible draws (C(2m-1, m): 35 for m = 4) than resamples, each distinct one is
    computed once and spread back. Only the neurons that can enter a resample's top-K are
    computed: a neuron's local firing is a weighted mean of its per-set fractions, so at most
    their maximum (its bound, over G). The neurons of highest bound come first; the others
    only as far as their bound reaches the lowest top-K-th value among the resamples (those
    left out are below every resample's top K, so the result is exact)."""
    fires = stats.set_counts[seg].astype(np.float64)             # (m, D) n_j(z)
    m, d = fires.shape
    fraction = fires / layout.set_sizes[seg, None]               # (m, D) n_j(z) / |z|
    fired = (fires > 0).astype(np.float64)                       # (m, D)
    rate = stats.global_rate
    bound = fraction.max(axis=0) / rate                          # (D,)
    order = np.argsort(-bound, kind='stable')
    inverse = None
    if m <= 15 and math.comb(2 * m - 1, m) < len(counts):
        # A row as one integer, digits base m + 1 ((m + 1)**m fits in int64 for m <= 15):
        # a 1-D unique is ten times faster than np.unique(axis=0).
        keys = counts @ (m + 1) ** np.arange(m, dtype=np.int64)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        counts = counts[first]
    weights = counts.astype(np.float64)                          # (U, m)

    def ratios(neurons):                                         # (U, len(neurons))
        return ((weights @ fraction[:, neurons]) / (weights @ fired[:, neurons] + 1e-20)
                / rate[neurons])
    top = max(ks)
    computed = min(d, 4 * top)
    ratio = ratios(order[:computed])
    lowest = np.partition(ratio, computed - top, axis=1)[:, computed - top].min()
    reach = int(np.count_nonzero(bound >= lowest))               # a prefix of `order`
    if reach > computed:
        ratio = np.concatenate([ratio, ratios(order[computed:reach])], axis=1)
    width = ratio.shape[1]
    largest = -np.sort(-np.partition(ratio, width - top, axis=1)[:, width - top:], axis=1)
    means = (np.cumsum(largest, axis=1)[:, np.asarray(ks) - 1] / np.asarray(ks)).T
    return means if inverse is None else means[:, inverse.ravel()]


def basic_interval(replicates, estimate, confidence):
    """The basic bootstrap interval (Davison & Hinkley 1997, eq. 5.6) of ``estimate`` from its
    (resamples,) ``replicates``: (2 s - q_hi, 2 s - q_lo), q the replicates' quantiles at
    (1 -+ confidence)/2, the low end clipped at 0 (a score is never negative).

    Reflected, not the percentile interval (q_lo, q_hi): top-K of noisy neurons biases the
    score upwards, and a resample re-selects its top-K, so the replicates sit above the score
    by about that bias; reflecting them corrects it to first order (the interval can then lie
    below the score)."""
    tail = (1 - confidence) / 2
    q_low, q_high = np.quantile(replicates, [tail, 1 - tail])
    return max(0.0, float(2 * estimate - q_high)), max(0.0, float(2 * estimate - q_low))
