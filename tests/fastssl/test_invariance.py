"""The invariance score against a hand computation and a literal transcription of the study's
steps (docs/evaluation.md), including the sign choice and the skipped small sets."""
import numpy as np
import pytest
import torch

from fastssl.invariance import firing_percentile, invariance_score
from fastssl_common.errors import UserError


def reference_score(h, set_ids, targets, k):
    """Step by step, loops and full sorts, as docs/evaluation.md spells it out."""
    h = np.asarray(h, np.float64)
    n, d = h.shape
    classes = sorted(set(targets))
    p = min((1.0 - 1.0 / len(classes)) * 100, 95)
    idx = int((n * p) // 100)
    t_pos = np.sort(h, axis=0)[idx]
    t_neg = -np.sort(-h, axis=0)[idx]
    g = (h >= t_pos).mean(axis=0)
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
