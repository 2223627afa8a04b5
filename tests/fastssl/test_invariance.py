"""The invariance score against a hand computation and a literal transcription of the study's
steps (docs/evaluation.md), including the sign choice and the skipped small sets."""
import numpy as np
import pytest
import torch

from fastssl.invariance import basic_interval, bootstrap_draws, firing_percentile, invariance_score
from fastssl.invariance_settings import RESAMPLE_UNITS, Bootstrap
from fastssl_common.errors import UserError


def literal_thresholds(h, targets):
    """Steps 1-3 with full sorts: (classes, p, t+, t-, G)."""
    n = len(h)
    classes = sorted(set(targets))
    p = min((1.0 - 1.0 / len(classes)) * 100, 95)
    idx = int((n * p) // 100)
    t_pos = np.sort(h, axis=0)[idx]
    return classes, p, t_pos, -np.sort(-h, axis=0)[idx], (h >= t_pos).mean(axis=0)


def reference_score(h, set_ids, targets, k):
    """Step by step, loops and full sorts, as docs/evaluation.md spells it out."""
    h = np.asarray(h, np.float64)
    n, d = h.shape
    classes, p, t_pos, t_neg, g = literal_thresholds(h, targets)
    local_sum = {y: np.zeros(d) for y in classes}
    local_cnt = {y: np.zeros(d) for y in classes}
    for z in sorted(set(set_ids)):
        rows = [i for i in range(n) if set_ids[i] == z]
        if len(rows) < 3:
            continue
        y = targets[rows[0]]
        for j in range(d):
            above = sum(h[i, j] > t_pos[j] for i in rows)
            below = sum(h[i, j] < t_neg[j] for i in rows)
            fires = max(above, below)
            if fires > 0:
                local_sum[y][j] += fires / len(rows)
                local_cnt[y][j] += 1
    tops = []
    for y in classes:
        local = np.where(local_cnt[y] > 0, local_sum[y] / np.maximum(local_cnt[y], 1), 0.0)
        tops.append(np.sort(local / g)[::-1][:k].mean())
    return np.mean(tops) * (100 - p)


def test_hand_computation_with_sign_choice_and_small_set():
    # 8 images, 2 targets (p = 50, idx = 4), 2 neurons, K = 1.
    # Neuron 0 ascending: [0,1,2,3,4,5,7.5,8] -> t+ = 4, t- = 3 (4th largest), G = 4/8.
    # Neuron 1 is neuron 0 negated: t+ = -3, t- = -4, G = 4/8.
    h0 = np.array([5, 0, 1, 3, 4, 2, 7.5, 8])
    h = np.stack([h0, -h0], axis=1)
    sets = ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c']     # set c has 2 images: skipped
    targets = ['x', 'x', 'x', 'y', 'y', 'y', 'y', 'y']
    # Set a (5, 0, 1): neuron 0: #>4 = 1, #<3 = 2 -> 2 (negative sign); neuron 1 (-5, 0, -1):
    #   #>-3 = 2, #<-4 = 1 -> 2 (positive sign). L_x = [2/3, 2/3], I_x = 4/3.
    # Set b (3, 4, 2): neuron 0: #>4 = 0, #<3 = 1 -> 1; neuron 1 (-3, -4, -2): #>-3 = 1,
    #   #<-4 = 0 -> 1. L_y = [1/3, 1/3], I_y = 2/3; score = (4/3 + 2/3)/2 * 50 = 50.
    # Counting set c (7.5, 8: n = 2 of 2 for both neurons) would make L_y = (1/3 + 1)/2 = 2/3.
    result = invariance_score(h, sets, targets, ks=(1, 2))
    assert result.firing_percentile == 50
    assert result.num_sets == 2 and result.num_small_sets == 1
    assert result.num_targets_without_sets == 0
    assert result.scores[1] == pytest.approx(50)
    np.testing.assert_allclose(result.per_target[2], [4 / 3, 2 / 3])


def test_target_without_a_set_of_three_scores_zero_but_counts():
    # 6 images, 2 targets (p = 50, idx = 3), 1 neuron, K = 1. Ascending [0,1,2,3,4,5]:
    # t+ = 3, t- = 2 (3rd largest), G = #{>= 3}/6 = 1/2. Set a (5, 4, 0): #>3 = 2, #<2 = 1
    # -> 2, L_x = 2/3, I_x = 4/3. Target y has only sets of 2 and 1 images: L_y = 0, yet it
    # counts in C and in the mean: score = (4/3 + 0)/2 * 50 = 100/3.
    h = np.array([[5], [4], [0], [1], [2], [3.]])
    result = invariance_score(h, list('aaabbc'), list('xxxyyy'), ks=(1,))
    assert result.num_targets_without_sets == 1 and result.num_sets == 1
    np.testing.assert_allclose(result.per_target[1], [4 / 3, 0])
    assert result.scores[1] == pytest.approx(100 / 3)


def test_neuron_that_fires_in_no_set_of_a_target_scores_zero_there():
    # Neuron 1 only exceeds its thresholds on target y's images: for target x it has no
    # counted set, so L_x1 = 0 (not 0/0).
    h = np.array([[0, 0], [1, 0], [2, 0], [3, 9], [4, 8], [5, 7.]])
    result = invariance_score(h, [0, 0, 0, 1, 1, 1], ['x', 'x', 'x', 'y', 'y', 'y'], ks=(1, 2))
    assert result.per_target[2][0] == pytest.approx(result.per_target[1][0] / 2)


@pytest.mark.parametrize('num_targets,ties', [(2, False), (3, True), (7, False), (40, True)])
def test_matches_literal_transcription(num_targets, ties):
    rng = np.random.default_rng(num_targets)
    n, d = 360, 30
    h = rng.standard_normal((n, d))
    if ties:  # ReLU-like features: many exact zeros, and repeated values
        h = np.round(np.maximum(h, 0), 1)
    set_ids = rng.permutation(np.arange(n) % 60)
    targets = [f't{s % num_targets}' for s in set_ids]
    sets = [f's{s}' for s in set_ids]
    # Shuffled order and a few 1- and 2-image sets mixed in.
    sets[:3] = ['lone', 'pair', 'pair']
    targets[2] = targets[1]
    result = invariance_score(torch.from_numpy(h).float(), sets, targets, ks=(10, 25))
    h32 = h.astype(np.float32)
    for k in (10, 25):
        assert result.scores[k] == pytest.approx(reference_score(h32, sets, targets, k),
                                                 rel=1e-9)
    assert result.firing_percentile == pytest.approx(firing_percentile(num_targets))


def test_column_blocks_and_threads_do_not_change_the_result(monkeypatch):
    import fastssl.invariance as inv
    rng = np.random.default_rng(1)
    h = rng.standard_normal((300, 64)).astype(np.float32)
    sets, targets = np.arange(300) // 5, np.arange(300) // 50
    whole = invariance_score(h, sets, targets, workers=1)
    monkeypatch.setattr(inv, '_BLOCK_BYTES', 300 * 4 * 7)   # 7 columns per block
    blocked = invariance_score(h, sets, targets, workers=3)
    assert blocked.scores == pytest.approx(whole.scores, rel=1e-12)


@pytest.mark.parametrize('sets,targets,needle', [
    ([0, 0, 0, 1, 1, 1], ['x'] * 6, 'at least two targets'),
    ([0, 0, 1, 2, 2, 3], list('xxxyyy'), 'no target has a set of at least 3'),
    ([0, 0, 0, 0, 1, 1], list('xxxyyy'), 'set 0 spans targets'),
    ([0, 0, 0, 1, 1], list('xxxyyy'), 'one set id and one target per image'),
])
def test_bad_sets(sets, targets, needle):
    with pytest.raises(UserError, match=needle):
        invariance_score(np.random.rand(6, 30), sets, targets)


def test_bad_features():
    with pytest.raises(UserError, match='1 <= K <= 5'):
        invariance_score(np.random.rand(6, 5), [0] * 3 + [1] * 3, list('xxxyyy'))
    h = np.random.rand(6, 30)
    h[2, 4] = np.nan
    with pytest.raises(UserError, match='NaN'):
        invariance_score(h, [0] * 3 + [1] * 3, list('xxxyyy'))


def photo_crops(count, side=32, margin=18):
    """``count`` different real-photo crops (uint8 HWC), side x side, with room to shift."""
    from skimage import data
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        image = photos[i % len(photos)][::4, ::4]
        top = rng.integers(0, image.shape[0] - side - margin)
        left = rng.integers(0, image.shape[1] - side - margin)
        crops.append(image[top:top + side + margin, left:left + side + margin])
    return crops, side


def test_flip_invariant_extractor_scores_higher_on_flipped_than_on_shifted_sets():
    """f(x) + f(lr x) + f(ud x) + f(lr ud x) ignores both flips by construction: on sets of
    the four flips of an image it must score higher than on sets of four shifts of it."""
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    net.fc = torch.nn.Identity()
    net.eval()

    noise = torch.Generator().manual_seed(1)

    def features(batch, invariant):
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255
        # Slight pixel noise per image: no two images (hence features) bitwise equal, as in
        # real data (equal values would tie at the thresholds).
        x = x + 0.01 * torch.randn(x.shape, generator=noise)
        views = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)] if invariant else [x]
        with torch.no_grad():
            return sum(net(v) for v in views).numpy()

    crops, side = photo_crops(24)
    flipped, shifted, ids = [], [], []
    for i, c in enumerate(crops):
        base = c[:side, :side]
        flipped += [base, base[:, ::-1], base[::-1], base[::-1, ::-1]]
        shifted += [c[d:d + side, d:d + side] for d in (0, 6, 12, 18)]
        ids += [i] * 4
    scores = {(name, inv): invariance_score(features(images, inv), ids, ids).scores[10]
              for name, images, inv in (('flip', flipped, True), ('shift', shifted, True),
                                        ('flip', flipped, False))}
    assert scores['flip', True] > scores['shift', True] + 10
    # The plain extractor is not flip-invariant: the construction is what earns the score.
    assert scores['flip', True] > scores['flip', False] + 10


# ---------------------------------------------------------------------------- bootstrap

def literal_replicates(h, set_ids, targets, k, strata, pool):
    """The resampled scores the plain way: a loop over resamples, in each one every target's
    local firing recounted from the features with the full-sample thresholds and G (held, as
    fastssl.invariance documents), the drawn sets weighted by how often they were drawn."""
    h = np.asarray(h, np.float64)
    n, d = h.shape
    classes, p, t_pos, t_neg, g = literal_thresholds(h, targets)
    rows = {z: [i for i in range(n) if set_ids[i] == z] for z in set(set_ids)}
    fires = {z: np.maximum((h[r] > t_pos).sum(0), (h[r] < t_neg).sum(0)) for z, r in rows.items()}

    def top_k(weighted_sets):
        num, den = np.zeros(d), np.zeros(d)
        for z, weight in weighted_sets:
            num += weight * fires[z] / len(rows[z])
            den += weight * (fires[z] > 0)
        local = np.where(den > 0, num / np.maximum(den, 1), 0.0)
        return np.sort(local / g)[::-1][:k].mean()

    own_sets = {y: [z for z in rows if targets[rows[z][0]] == y and len(rows[z]) >= 3]
                for y in classes}
    out = []
    for b in range(len(pool[1]) if pool is not None else len(strata[0][2])):
        total = sum(top_k(zip(names, counts[b])) for _, names, counts in strata)
        if pool is not None:
            pooled, counts = pool
            total += sum(c * top_k((z, 1) for z in own_sets[y])
                         for y, c in zip(pooled, counts[b]))
        out.append(total / len(classes) * (100 - p))
    return np.array(out)


def mixed_sets(seed=0, n=150, d=64):
    """ReLU-like features (ties), 5 targets: with several sets of >= 3 images, with one, and
    one target with only 2-image sets (no counted set)."""
    rng = np.random.default_rng(seed)
    h = np.round(np.maximum(rng.standard_normal((n, d)), 0), 1)
    sizes = [5, 4, 3, 6, 2, 3, 4, 7, 3, 2, 2, 5, 4, 3, 3, 2, 2, 2]
    owner = ['a', 'a', 'a', 'b', 'b', 'c', 'c', 'c', 'c', 'c', 'd', 'd', 'e', 'e', 'e', 'f',
             'f', 'f']
    set_ids = [f's{i}' for i, size in enumerate(sizes) for _ in range(size)]
    targets = [owner[i] for i, size in enumerate(sizes) for _ in range(size)]
    order = rng.permutation(len(set_ids))
    return h[:len(set_ids)][order], [set_ids[i] for i in order], [targets[i] for i in order]


@pytest.mark.parametrize('unit', RESAMPLE_UNITS)
def test_vectorised_resamples_equal_a_plain_loop(unit):
    h, set_ids, targets = mixed_sets()
    plan = Bootstrap(resamples=150, seed=3, unit=unit)
    result = invariance_score(h, set_ids, targets, ks=(1, 4), bootstrap=plan)
    strata, pool = bootstrap_draws(set_ids, targets, plan)
    if unit == 'sets':   # a, c, e: their sets in turn; b (one set), d (one), f (none): pooled
        assert [(y, len(names)) for y, names, _ in strata] == [('a', 3), ('c', 4), ('e', 3)]
        assert pool[0] == ['b', 'd', 'f']
        assert all((counts.sum(axis=1) == len(names)).all() for _, names, counts in strata)
    else:
        assert strata == [] and pool[0] == list('abcdef')
    assert (pool[1].sum(axis=1) == len(pool[0])).all()
    h32 = h.astype(np.float32)
    for k in (1, 4):
        expected = literal_replicates(h32, set_ids, targets, k, strata, pool)
        np.testing.assert_allclose(result.replicates[k], expected, rtol=1e-12)
        assert result.ci[k] == pytest.approx(basic_interval(expected, result.scores[k], 0.95),
                                             rel=1e-12)
    # Seeded: the same draws again; another seed, other draws.
    again = invariance_score(h, set_ids, targets, ks=(1, 4), bootstrap=plan)
    assert again.ci == result.ci
    other = invariance_score(h, set_ids, targets, ks=(1, 4),
                             bootstrap=Bootstrap(resamples=150, seed=4, unit=unit))
    assert other.ci != result.ci


def test_basic_interval_reflects_the_replicates():
    # Replicates 11..20 around an estimate of 10: quantiles 11.225 / 19.775 at 95 %; the
    # basic interval is (20 - 19.775, 20 - 11.225), clipped at 0 below.
    replicates = np.arange(11.0, 21.0)
    assert basic_interval(replicates, 10.0, 0.95) == pytest.approx((0.225, 8.775))
    assert basic_interval(replicates, 5.0, 0.95) == (0.0, 0.0)


def loaded_sets(rng, loadings, sets_per_target, set_size):
    """Features with a known invariance: for target y and neuron j, each image of a set is
    r_yj * a + sqrt(1 - r_yj^2) * noise, with a drawn once per set and neuron (loadings
    r: (targets, D)): the neuron's activations correlate by r^2 within a set, by 0 across."""
    c, d = loadings.shape
    r = loadings[:, None, None, :].astype(np.float32)
    shared = rng.standard_normal((c, sets_per_target, 1, d), dtype=np.float32)
    noise = rng.standard_normal((c, sets_per_target, set_size, d), dtype=np.float32)
    h = (r * shared + np.sqrt(1 - r * r) * noise).reshape(-1, d)
    set_ids = np.repeat(np.arange(c * sets_per_target), set_size)
    return h, set_ids, set_ids // sets_per_target


@pytest.mark.parametrize('unit,targets,sets_per_target,set_size', [
    ('targets', 100, 1, 60),   # set = target, as ALOI (72 views of each object)
    ('sets', 6, 10, 40),       # a few fixed classes, many sets of each, as Pascal3D+
])
def test_interval_covers_the_population_score(unit, targets, sets_per_target, set_size):
    """Over 200 independent datasets, the 95 % interval holds the population score in 90-99 %
    of them. Population: unit 'targets' draws new targets (loadings) each time, and its score
    is the score of 5000 targets; unit 'sets' keeps the targets and draws new sets, and its
    score is the score of 1000 sets per target. Sizes where the score's own small-sample bias
    (the strict > at the thresholds drops one of the N (100 - p)/100 firing images) is small
    against its spread."""
    d, k = 32, 5
    fixed = np.random.default_rng(3).uniform(0, 0.98, (targets, d))
    if unit == 'targets':
        population = loaded_sets(np.random.default_rng(2), np.random.default_rng(4).uniform(
            0, 0.98, (5000, d)), sets_per_target, set_size)
    else:
        population = loaded_sets(np.random.default_rng(2), fixed, 1000, set_size)
    truth = invariance_score(*population, ks=(k,)).scores[k]
    rng = np.random.default_rng(1)
    covered = 0
    for draw in range(200):
        loadings = rng.uniform(0, 0.98, (targets, d)) if unit == 'targets' else fixed
        result = invariance_score(*loaded_sets(rng, loadings, sets_per_target, set_size),
                                  ks=(k,), workers=1, bootstrap=Bootstrap(seed=draw, unit=unit))
        low, high = result.ci[k]
        covered += low <= truth <= high
    assert 0.90 <= covered / 200 <= 0.99
