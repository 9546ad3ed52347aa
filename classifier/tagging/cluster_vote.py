"""Tagging with the library's clusters: where the cluster review's groups decide.

The prototype head decides each image alone: close enough to a class's labels, for
that class's spread, or unknown. On a long-tailed library the classes nobody labelled
that look like labelled ones (a windsor chair next to chairs, a rhino next to
elephants) are then either tagged or, at a stricter bar, take many images of the
labelled classes with them into "unknown". The clustering
(lookalike.classifier.clustering.discovery) sees the whole library: the unlabelled
images of a labelled class join that class's group, a class nobody labelled forms a
group of its own. So by default (``tag --without-clusters``: the head alone) the
groups decide where they speak:

- an image in a labelled class's group is tagged (its best guess, the prototype
  head's), unless the head finds it nearly surely of no labelled class (P(known)
  below LEAST_KNOWN: clutter that a group took in);
- an image in a new category's group is unknown, unless its best guess's class has
  fewer than FEW_LABELS labels (the clustering joins a class's unlabelled images to it
  only when its labels show how far the class spreads, so with 1-4 labels a class's
  own images form "new" groups), or the group holds at most PIECE of the images of
  its best guess's class (the clustering cuts a class of thousands into groups of
  hundreds: on the synthetic 100,000-image library of scripts/bench_tag_scale.py, a
  class of 26,000 images with 10 labels lost 8,155 of them to such groups without this
  rule); then the head's own decision stands;
- an image the clustering leaves alone (noise) keeps the head's decision.

The label, and the confidence (the head's calibrated probability that the best guess
is right), are the head's: only the decision tagged / unknown changes.

Measured in process on the long-tailed dev library (``scripts/bench_tagging.py
--long-tailed --new proto-clusters --old proto``; 51 classes of 31-435 images plus
100 distractors, 10 classes never labelled, 10 splits), see the README's figures.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

# P(known) below which an image in a labelled class's group stays unknown: on the
# long-tailed dev splits 0-9 (10 labels a class; measured in process by a harness
# outside the repository, before PIECE) 0.1 left 0.74 of the distractors unknown
# against 0.66 at 0, for 0.911 against 0.921 worst known accuracy; 0.3 left 0.82 for
# 0.892.
LEAST_KNOWN = 0.1
# Labels a class needs before its images in a new category's group count as unknown:
# on the same splits with 3 labels a class (same harness), 5 gave known accuracy worst
# 0.873, novel unknown 0.695 (the head alone: 0.784 / 0.701), 3 gave 0.746 / 0.940.
FEW_LABELS = 5
# A new category's group of at most this share of the images of the label its images
# look like may be a piece of that class, not a class of its own: the head decides.
PIECE = 0.25

TAG, UNKNOWN, HEAD = 1, -1, 0


def cluster_votes(
    vectors: np.ndarray,
    rows: np.ndarray,
    seeds: np.ndarray,
    labels: list[str] | np.ndarray,
    guesses: list[str],
    p_known: np.ndarray,
) -> np.ndarray:
    """For each of ``rows`` (unlabelled rows of ``vectors``, L2-normalised), TAG, UNKNOWN
    or HEAD (the head decides) from the clustering of the library (see the module
    docstring); ``guesses`` and ``p_known``: the head's, one per row."""
    from lookalike.classifier.clustering.discovery import cluster_vectors

    labels = [str(label) for label in labels]
    found = cluster_vectors(vectors[rows], vectors[seeds], labels)
    votes = np.full(len(rows), HEAD, dtype=np.int8)
    count = Counter(labels)
    few = np.array([count[g] < FEW_LABELS for g in guesses], dtype=bool)
    # the images of each label: its labels and its groups' members
    grouped = Counter(count)
    for cluster in found.clusters:
        if cluster.label is not None:
            grouped[cluster.label] += len(cluster.members)
    for cluster in found.clusters:
        members = cluster.members
        if cluster.label is not None:
            votes[members] = np.where(p_known[members] >= LEAST_KNOWN, TAG, UNKNOWN)
            continue
        # a piece of a very large class (the clustering cuts one of thousands of images
        # into groups of hundreds): the head decides for a group at most PIECE of its
        # guessed label's images
        piece = np.array([len(members) <= PIECE * grouped[guesses[m]] for m in members], dtype=bool)
        votes[members] = np.where(few[members] | piece, HEAD, UNKNOWN)
    return votes
