"""Tagging with the library's clusters (tag --with-clusters): where the groups decide."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import lookalike.classifier.clustering.discovery as discovery
from lookalike.classifier.clustering.discovery import Cluster, Clustering
from lookalike.classifier.tagging import cluster_vote
from lookalike.classifier.tagging.calibration import expected_calibration_error
from lookalike.classifier.tagging.cluster_vote import HEAD, TAG, UNKNOWN, cluster_votes
from lookalike.classifier.tagging.tagger import Prediction, tag_vectors
from lookalike.indexer.store.library import Library
from tests.support.cli import run_cli
from tests.support.vectors import clusters as synthetic_classes
from tests.unit.test_proto_head import labelled, long_tailed, make_library


def cluster(members, label=None) -> Cluster:
    m = np.array(members, dtype=np.int64)
    return Cluster(m, label, 0.9, m[:6], label, 0.9 if label else None, 1.0)


def four_answers(shifts=None) -> Prediction:
    """Two images the head tags, two it leaves unknown; the groups speak on the first of
    each pair (overruling the head)."""
    return Prediction(
        pred=np.zeros(4, dtype=int),
        p_known=np.array([0.9, 0.9, 0.2, 0.2]),
        confidence=np.array([0.8, 0.8, 0.3, 0.3]),
        votes=np.array([UNKNOWN, HEAD, TAG, HEAD], dtype=np.int8),
        shifts=shifts,
    )


def test_the_votes_override_the_calibrated_rule_but_not_min_confidence():
    p = four_answers()
    tagged, confidence = p.decide()
    assert tagged.tolist() == [False, True, True, False]
    # every confidence is the probability that the answer given is right
    assert np.allclose(confidence, [0.1, 0.8, 0.3, 0.8])
    assert p.decide(min_confidence=0.5)[0].tolist() == [False, True, False, False]


def test_each_kind_of_group_votes_as_documented(monkeypatch):
    found = Clustering(
        [cluster([0, 1, 2], label="cat"), cluster([3, 4, 5]), cluster([6])], np.array([7]), 0.5
    )
    monkeypatch.setattr(discovery, "cluster_vectors", lambda *a, **k: found)
    rows = np.arange(8)
    labels = ["cat"] * cluster_vote.FEW_LABELS + ["owl"]  # cat well labelled, owl once
    seeds = np.arange(8, 8 + len(labels))
    x = np.eye(8 + len(labels), dtype=np.float32)
    guesses = ["cat", "cat", "owl", "cat", "cat", "cat", "owl", "cat"]
    p_known = np.array([0.9, 0.05, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    votes, group = cluster_votes(x, rows, seeds, labels, guesses, p_known)
    assert group.tolist() == ["cat"] * 3 + [None] * 5
    assert votes.tolist() == [
        TAG,  # in cat's group
        UNKNOWN,  # in cat's group, but nearly surely of no labelled class
        TAG,  # in cat's group (the head's guess is the label given)
        UNKNOWN,  # in a new category's group (3 > a quarter of cat's 8 images)
        UNKNOWN,
        UNKNOWN,
        HEAD,  # in a new group, but owl has one label: the head decides
        HEAD,  # noise
    ]


def test_a_small_new_group_beside_a_large_labelled_class_is_left_to_the_head(monkeypatch):
    """A piece of a very large class is not a class of its own: a new group of at most
    PIECE of its guessed label's images is decided by the head, a larger one is not."""
    big = list(range(100))
    found = Clustering(
        [cluster(big, label="cat"), cluster(range(100, 120)), cluster(range(120, 170))],
        np.zeros(0, dtype=np.int64),
        0.5,
    )
    monkeypatch.setattr(discovery, "cluster_vectors", lambda *a, **k: found)
    labels = ["cat"] * 10 + ["owl"] * 10
    x = np.eye(170 + len(labels), dtype=np.float32)
    seeds = np.arange(170, 170 + len(labels))
    guesses = ["cat"] * 120 + ["owl"] * 50
    votes, _ = cluster_votes(x, np.arange(170), seeds, labels, guesses, np.ones(170))
    assert set(votes[:100].tolist()) == {TAG}
    assert set(votes[100:120].tolist()) == {HEAD}  # 20 <= 0.25 x (100 + 10) cat images
    assert set(votes[120:].tolist()) == {UNKNOWN}  # 50 > 0.25 x 10 owl images


@pytest.mark.parametrize("per_class", [1, 3])
def test_the_groups_tag_what_the_head_alone_leaves_unknown(per_class):
    """The synthetic long-tailed library (a class of 600, five of 30, one of 40 never
    labelled) with few labels: the head alone leaves most known images unknown (0.35 and
    0.19 of them tagged right), the groups tag them, and the class nobody labelled
    stays unknown."""
    x, y = long_tailed()
    seeds = labelled(y, per_class)
    novel = len(np.unique(y)) - 1
    out = {}
    for clusters in (False, True):
        rows, guesses, prediction, _ = tag_vectors(
            x, seeds, y[seeds].astype(str), clusters=clusters
        )
        tagged, _ = prediction.decide()
        truth = y[rows]
        right = tagged & (np.array(guesses) == truth.astype(str))
        out[clusters] = (right[truth != novel].mean(), (~tagged[truth == novel]).mean())
        assert (prediction.votes is not None) == clusters
    assert out[True][0] >= out[False][0] + 0.2 and out[True][0] >= 0.55
    assert out[True][1] >= 0.95


def test_the_cli_tags_with_the_clusters_by_default_and_says_so(tmp_path):
    make_library(tmp_path / "lib")
    lib = str(tmp_path / "lib")
    alone = run_cli("tag", "--library", lib, "--without-clusters").stdout
    assert "with the proto head in" in alone
    with Library.open(lib) as opened:
        assert json.loads(opened.catalog.get_meta("tagging"))["clusters"] is False
    said = run_cli("tag", "--library", lib).stdout  # the default
    assert "with the proto head and the clusters" in said
    assert "held-out estimate from your labels (tagged again with the clusters" in said
    doc = json.loads(run_cli("tag", "--library", lib, "--with-clusters", "--json").stdout)
    assert len(doc) > 0 and all(0.0 <= d["confidence"] <= 1.0 for d in doc)
    with Library.open(lib) as opened:
        stored = json.loads(opened.catalog.get_meta("tagging"))
        assert stored["clusters"] is True and stored["replay"]["rounds_rows"] > 0


def test_a_shift_makes_each_kind_of_answer_calibrated():
    """fit_shifts moves each kind's confidence to what its rows score; a kind with few
    rows is held towards the head's own confidence, one with none keeps it."""
    kind = np.array([cluster_vote.TAG_KEPT] * 200 + [cluster_vote.UNKNOWN_MADE] * 3)
    confidence = np.array([0.5] * 200 + [0.2] * 3)
    right = np.array([True] * 180 + [False] * 20 + [True] * 3)
    shifts = cluster_vote.fit_shifts(confidence, right, kind)
    moved = cluster_vote.shifted(confidence, shifts[kind])
    assert abs(moved[:200].mean() - 0.9) < 0.02  # 200 rows: nearly their own rate
    assert 0.2 < moved[-1] < 0.9  # three rows right: moved up, not to certainty
    assert shifts[cluster_vote.TAG_ADDED] == shifts[cluster_vote.HEAD_TAG] == 0.0


def test_the_replay_hides_whole_classes_and_a_third_of_the_others_labels():
    labels = np.array([f"c{c}" for c in range(10) for _ in range(9)] + ["once"])
    kept, hidden = cluster_vote.replay_split(labels, seed=0)
    assert sorted(np.concatenate([kept, hidden]).tolist()) == list(range(len(labels)))
    per_class = Counter(labels[hidden].tolist())
    whole = [c for c, n in per_class.items() if n == (labels == c).sum()]
    assert len(whole) == 2  # a fifth of 11 classes
    part = {c: n for c, n in per_class.items() if c not in whole}
    assert set(part.values()) == {3} and "once" not in part  # a third of 9; not of 1
    assert cluster_vote.replay_split(labels, seed=0)[1].tolist() == hidden.tolist()


def test_an_unsure_guess_in_a_labelled_group_takes_the_group_label():
    """The groups tag an image of cat's group as cat when the head's other guess is
    below RELABEL_SURE; a sure guess, a guess of the group's own label, an image the
    groups leave unknown and one outside a labelled group keep the head's guess."""
    sure = cluster_vote.RELABEL_SURE
    votes = np.array([TAG, TAG, TAG, UNKNOWN, HEAD], dtype=np.int8)
    group = np.array(["cat", "cat", "cat", "cat", None], dtype=object)
    guesses = ["owl", "owl", "cat", "owl", "owl"]
    confidence = np.array([sure - 0.2, sure + 0.1, 0.3, 0.3, 0.3])
    relabel = cluster_vote.relabelled(votes, group, guesses, confidence)
    assert relabel.tolist() == [True, False, False, False, False]


def test_a_sure_guess_of_a_class_with_few_labels_takes_the_group_label():
    """A head's confidence in a class of one to four labels is no evidence against a
    labelled group: 190 faces labelled by 10 photos of one person, a cup and a pizza
    labelled once, and the head sure that other people's faces are cups."""
    sure = cluster_vote.RELABEL_SURE
    votes = np.array([TAG, TAG, TAG], dtype=np.int8)
    group = np.array(["faces", "faces", "cup"], dtype=object)
    guesses = ["cup", "owl", "faces"]
    confidence = np.array([sure + 0.2, sure + 0.2, sure + 0.2])
    counts = Counter({"faces": 10, "cup": 1, "owl": cluster_vote.FEW_LABELS})
    relabel = cluster_vote.relabelled(votes, group, guesses, confidence, counts)
    assert relabel.tolist() == [True, False, False]
    assert not cluster_vote.relabelled(votes, group, guesses, confidence).any()


def test_a_relabelled_answer_is_right_where_the_head_s_guess_is_wrong():
    """Its confidence is 1 - the head's confidence in its own guess, moved by the
    RELABELLED kind's shift; the other answers are as before."""
    p = four_answers()._replace(relabel=np.array([False, False, True, False]))
    tagged, confidence = p.decide()
    assert tagged.tolist() == [False, True, True, False]
    assert np.allclose(confidence, [0.1, 0.8, 0.7, 0.8])
    kind = cluster_vote.answer_kind(
        tagged, np.array([True, True, False, False]), p.votes, p.relabel
    )
    assert kind[2] == cluster_vote.RELABELLED and kind[0] == cluster_vote.UNKNOWN_MADE
    shifts = np.zeros(cluster_vote.CELLS)
    shifts[cluster_vote.RELABELLED] = np.log(3.0)
    odds = p._replace(shifts=shifts).decide()[1][2]
    assert np.isclose(odds / (1 - odds), 3 * 0.7 / 0.3)


def test_the_groups_labels_tag_more_images_right_than_the_head_s_unsure_guesses():
    """Overlapping synthetic classes (8 of 60, 3 labels each): where the groups put
    their label in place of the head's unsure guess, it is right far more often than
    the guess would be."""
    x, y = synthetic_classes(8, 60, spread=1.2, seed=0)
    rng = np.random.default_rng(0)
    seeds = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(y == c), 3, False) for c in range(8)])
    )
    rows, guesses, prediction, _ = tag_vectors(x, seeds, y[seeds].astype(str), clusters=True)
    assert prediction.relabel is not None
    at = np.flatnonzero(prediction.relabel)
    assert len(at) >= 5
    truth = y[rows].astype(str)[at]
    head = np.unique(y[seeds].astype(str))[prediction.pred[at]]
    assert (np.array(guesses)[at] == truth).mean() >= (head == truth).mean() + 0.5


def test_the_shifts_move_every_answer_and_min_confidence_sees_them():
    p = four_answers(shifts=np.log(np.array([1, 2, 3, 4, 5, 6], dtype=float)))  # odds x1-x6
    tagged, confidence = p.decide()
    assert tagged.tolist() == [False, True, True, False]

    def odds(c):
        return c / (1 - c)

    # an unknown the groups made, the head's tag, a tag the groups added, the head's unknown
    assert np.allclose(
        odds(confidence), [4 * odds(0.1), 5 * odds(0.8), 2 * odds(0.3), 6 * odds(0.8)]
    )
    # the tag the groups added is 0.46 likely right, not the head's 0.3
    assert p.decide(min_confidence=0.4)[0].tolist() == [False, True, True, False]
    assert p.decide(min_confidence=0.5)[0].tolist() == [False, True, False, False]


def test_the_clusters_answers_are_calibrated_by_a_replay():
    x, y = long_tailed()
    seeds = labelled(y, 10)
    rows, guesses, prediction, _ = tag_vectors(x, seeds, y[seeds].astype(str), clusters=True)
    assert prediction.shifts is not None and prediction.shifts.shape == (cluster_vote.CELLS,)
    truth, novel = y[rows], y[rows] == y.max()
    errors = []
    for shifts in (None, prediction.shifts):
        tagged, confidence = prediction._replace(shifts=shifts).decide()
        assert ((0.0 <= confidence) & (confidence <= 1.0)).all()
        right = np.where(novel, ~tagged, tagged & (np.array(guesses) == truth.astype(str)))
        errors.append(expected_calibration_error(confidence, right))
    assert errors[1] < errors[0]
    # one label a class: no label can be hidden from a class that stays labelled
    one = labelled(y, 1)
    assert tag_vectors(x, one, y[one].astype(str), clusters=True)[2].shifts is None
