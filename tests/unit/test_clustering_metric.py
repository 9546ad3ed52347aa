"""The label-derived pieces of clustering (lookalike.classifier.clustering.metric): whitening,
the midpoint cut, the separation ratio, the nearest-centroid refinement and the
attachment of noise within reach, on synthetic unit vectors."""

from __future__ import annotations

import numpy as np

from lookalike.classifier.clustering.metric import (
    attach_within_reach,
    midpoint_threshold,
    refine,
    separation_ratio,
    whiten_within,
)
from tests.support.vectors import unit

DIM = 16


def test_whitening_shrinks_the_direction_classes_vary_in():
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(8, DIM)) * np.r_[0.0, np.ones(DIM - 1)])  # none on axis 0
    nuisance = np.zeros(DIM)
    nuisance[0] = 1.0
    ids = np.repeat(np.arange(8), 10)
    x = centres[ids] + 0.8 * rng.normal(size=(80, 1)) * nuisance + 0.05 * rng.normal(size=(80, DIM))
    x = unit(x)
    white = whiten_within(x, x, ids)
    assert white is not None and white.shape == x.shape
    assert np.allclose(np.linalg.norm(white, axis=1), 1.0, atol=1e-5)

    def nuisance_share(v):  # variance along the nuisance axis within the classes
        centred = v - np.stack([v[ids == c].mean(0) for c in ids])
        return (centred[:, 0] ** 2).sum() / (centred**2).sum()

    assert nuisance_share(x) > 0.5  # the classes do vary along axis 0...
    assert nuisance_share(white) < 0.7 * nuisance_share(x)  # ...much less once whitened
    barely = whiten_within(x, x, ids, alpha=1e6)  # all shrinkage: the metric is unchanged
    assert nuisance_share(barely) > 0.98 * nuisance_share(x)
    assert whiten_within(x, x[:20], ids[:20]) is None  # two classes: too few to learn from


def test_midpoint_threshold_lies_between_spread_and_nearest_class():
    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(6, DIM)))
    ids = np.repeat(np.arange(6), 8)
    x = unit(centres[ids] + 0.4 * rng.normal(size=(48, DIM)) / np.sqrt(DIM))
    cut, spread = midpoint_threshold(x, ids)
    pairs = [1 - (x[ids == a] @ x[ids == b].T).mean() for a in range(6) for b in range(6) if a != b]
    assert 0 < spread < cut < min(pairs) + 0.5 * (max(pairs) - min(pairs))
    assert cut > spread + 0.25 * (min(pairs) - spread)
    assert midpoint_threshold(x[:24], ids[:24]) is None  # three classes


def test_refine_moves_points_to_the_nearest_centroid_and_drops_small_clusters():
    rng = np.random.default_rng(2)
    centres = unit(rng.normal(size=(3, DIM)))
    zu = unit(np.repeat(centres, 10, axis=0) + 0.1 * rng.normal(size=(30, DIM)))
    zl = unit(centres[:1] + 0.1 * rng.normal(size=(4, DIM)))  # class 0 has labels
    truth = np.array([0] * 10 + [1] * 10 + [2] * 10)
    assign = truth.copy()
    assign[truth == 1] = 1  # a new cluster
    assign[truth == 2] = 2  # another
    assign[[0, 1]] = 2  # two images of the labelled class in the wrong cluster
    assign[25] = -1  # noise stays noise
    out = refine(zu, zl, np.zeros(4, np.int64), assign, n_classes=1, min_size=3)
    expected = truth.copy()
    expected[25] = -1
    assert out.tolist() == expected.tolist()
    small = assign.copy()
    small[truth == 2] = -1
    small[[20, 21]] = 2  # a cluster of two, under min_size
    out = refine(zu, zl, np.zeros(4, np.int64), small, n_classes=1, min_size=3)
    assert (out[[20, 21]] == -1).all() and (out[truth == 1] == 1).all()


def test_separation_ratio_grows_with_how_far_apart_classes_are_for_their_spread():
    rng = np.random.default_rng(3)
    centres = unit(rng.normal(size=(6, DIM)))
    ids = np.repeat(np.arange(6), 8)
    noise = rng.normal(size=(48, DIM)) / np.sqrt(DIM)
    tight = separation_ratio(unit(centres[ids] + 0.3 * noise), ids, 0.1)
    loose = separation_ratio(unit(centres[ids] + 1.0 * noise), ids, 0.1)
    assert tight is not None and loose is not None
    assert tight > 2 * loose > 2  # distinct classes are farther apart than they spread
    one = separation_ratio(unit(centres[:1] + 0.5 * noise), ids, 0.5)  # one class, 6 ids
    assert one is not None and one < 1.3
    assert separation_ratio(unit(centres[ids[:24]]), ids[:24], 0.1) is None  # three classes


def test_noise_joins_its_nearest_cluster_only_within_the_cluster_reach():
    rng = np.random.default_rng(4)
    centres = unit(rng.normal(size=(2, DIM)))
    members = unit(np.repeat(centres, 10, axis=0) + 0.3 * rng.normal(size=(20, DIM)))
    inside = unit(centres[1] + 0.05 * rng.normal(size=(1, DIM)))  # near the new cluster
    far = unit(rng.normal(size=(1, DIM)))  # like nothing
    zu = np.vstack([members[10:], inside, far])
    zl = members[:10]  # class 0: labelled images only
    assign = np.array([1] * 10 + [-1, -1])
    out = attach_within_reach(zu, zl, np.zeros(10, np.int64), assign, n_classes=1)
    assert out.tolist() == [1] * 10 + [1, -1]
    just_labelled = unit(centres[:1] + 0.05 * rng.normal(size=(1, DIM)))
    out = attach_within_reach(just_labelled, zl, np.zeros(10, np.int64), np.array([-1]), 1)
    assert out.tolist() == [0]
