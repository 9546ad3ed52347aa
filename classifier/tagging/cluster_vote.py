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

- an image in a labelled class's group is tagged, unless the head finds it nearly
  surely of no labelled class (P(known) below LEAST_KNOWN: clutter that a group took
  in); with the head's best guess when the head is at least RELABEL_SURE sure of it
  and its guess has FEW_LABELS labels or more, else with the group's label
  (:func:`relabelled`);
- an image in a new category's group is unknown, unless its best guess's class has
  fewer than FEW_LABELS labels (the clustering joins a class's unlabelled images to it
  only when its labels show how far the class spreads, so with 1-4 labels a class's
  own images form "new" groups), or the group holds at most PIECE of the images of
  its best guess's class (the clustering cuts a class of thousands into groups of
  hundreds: on the synthetic 100,000-image library of scripts/bench_tag_scale.py, a
  class of 26,000 images with 10 labels lost 8,155 of them to such groups without this
  rule); then the head's own decision stands;
- an image the clustering leaves alone (noise) keeps the head's decision.

The label is the head's, except where the group's label replaces an unsure guess.
The confidence of an answer is the head's confidence for it (for the group's label in
place of the guess: 1 - the head's confidence in its guess, the chance it is wrong)
moved (in logit) by a shift learnt on a replay: the library is tagged again with some
labels hidden (REPLAY_CLASSES of the labelled classes whole: they play classes nobody
labelled, with every one of their images, at the class's true size; and REPLAY_LABELS
of every other class's labels), and each kind of answer (answer_kind: the groups' tag
or unknown, agreeing with the head alone or overruling it; the head's own tag or
unknown where the groups leave it to the head) gets the shift that calibrates the
hidden images' answers of that kind (:func:`fit_shifts`). Without it, an answer the
groups changed kept the head's confidence for it, below 0.5 by construction, though
such answers are right far more often (long-tailed dev splits 0-4, 10 labels: tags the
groups added had 0.45 confidence for 0.70 right, unknowns they made 0.15 for 0.82;
with the shifts 0.73 for 0.70 and 0.47 for 0.82). With one label a class no label can
be hidden from a class that stays labelled, so there is no replay: the head's
confidences stand.

Measured in process on the long-tailed dev library (``scripts/bench_tagging.py
--long-tailed --new proto-clusters --old proto``; 51 classes of 31-435 images plus
100 distractors, 10 classes never labelled, 10 splits), see the README's figures and
docs/benchmarks.md.
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

# Head confidence in its best guess below which an image in a labelled class's group
# takes the group's label instead. Long-tailed dev splits 0-9 (in process, a harness
# outside the repository), known accuracy mean at 0 (never) / 0.6 / 0.7 / 1 (always):
# 10 labels a class 0.936 / 0.940 / 0.940 / 0.938, 30 labels 0.955 / 0.955 / 0.955 /
# 0.953, 3 labels 0.882 / 0.890 / 0.892 / 0.893, 1 label 0.759 / 0.772 / 0.774 / 0.783;
# Zipf sizes, 10 labels 0.929 / 0.933 / 0.932 / 0.931. Confirmed on splits 100-109
# (scripts/bench_tagging.py, 10 labels): worst / mean 0.903 / 0.929 -> 0.906 / 0.934.
RELABEL_SURE = 0.7
# ... and whatever its confidence when its guess is a class of fewer than FEW_LABELS
# labels (relabelled's ``counts``): the head's confidence in such a class has little to
# go on (a library of 190 faces labelled by ten photos of one person, a cup and a pizza
# labelled once: the head was 0.70-0.96 sure that 65 other faces were cups or pizzas, in
# the faces' group). On the long-tailed dev splits 0-9 (scripts/bench_tagging.py, known
# accuracy worst / mean):
# 1 label a class 0.719 / 0.774 -> 0.735 / 0.783, 3 labels 0.873 / 0.892 -> 0.873 /
# 0.893, 10 and 30 unchanged; 1-30 labels a class (--labels 1-30) 0.789 / 0.863 ->
# 0.789 / 0.865, with Zipf sizes 0.813 / 0.849 -> 0.812 / 0.849, each class's first
# images labelled (--first-labels) 0.837 / 0.885 -> 0.835 / 0.885; novel unknown
# unchanged on every run.

# The replay that calibrates the groups' answers hides this share of the labelled
# classes whole (at least one, when three or more are labelled) ...
REPLAY_CLASSES = 0.2
# ... and this share of each other class's labels (at least one of a class with two or
# more).
REPLAY_LABELS = 1 / 3
# Pull of a shift towards 0 (the head's own confidence), as a ridge on it: about four
# rows' worth of evidence.
SHIFT_PRIOR = 1.0
# The kinds of answer, as indices into the shifts: a tag the groups give and the head
# alone too, one the head alone does not, an unknown the groups give and the head alone
# too, one the head alone does not; a tag and an unknown the head decided (noise, ...);
# a tag with the group's label in place of the head's unsure guess (relabelled).
TAG_KEPT, TAG_ADDED, UNKNOWN_KEPT, UNKNOWN_MADE, HEAD_TAG, HEAD_UNKNOWN, RELABELLED = range(7)
CELLS = 7


def cluster_votes(
    vectors: np.ndarray,
    rows: np.ndarray,
    seeds: np.ndarray,
    labels: list[str] | np.ndarray,
    guesses: list[str],
    p_known: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` (unlabelled rows of ``vectors``, L2-normalised): TAG, UNKNOWN
    or HEAD (the head decides) from the clustering of the library (see the module
    docstring), and the label of its labelled class's group (None: in none);
    ``guesses`` and ``p_known``: the head's, one per row."""
    from lookalike.classifier.clustering.discovery import cluster_vectors

    labels = [str(label) for label in labels]
    found = cluster_vectors(vectors[rows], vectors[seeds], labels)
    votes = np.full(len(rows), HEAD, dtype=np.int8)
    group = np.full(len(rows), None, dtype=object)
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
            group[members] = cluster.label
            continue
        # a piece of a very large class (the clustering cuts one of thousands of images
        # into groups of hundreds): the head decides for a group at most PIECE of its
        # guessed label's images
        piece = np.array([len(members) <= PIECE * grouped[guesses[m]] for m in members], dtype=bool)
        votes[members] = np.where(few[members] | piece, HEAD, UNKNOWN)
    return votes, group


def relabelled(
    votes: np.ndarray,
    group: np.ndarray,
    guesses: list[str],
    confidence: np.ndarray,
    counts: Counter | None = None,
) -> np.ndarray:
    """Which rows the groups tag with their group's label rather than the head's best
    guess (``guesses``, right with probability ``confidence``): those the groups tag
    whose guess is another label, with a confidence below RELABEL_SURE or (``counts``:
    the labels of each class) a guess of a class with fewer labels than FEW_LABELS."""
    pairs = zip(group, guesses, strict=True)
    other = np.array([g is not None and g != guess for g, guess in pairs], dtype=bool)
    unsure = confidence < RELABEL_SURE
    if counts is not None:
        unsure |= np.array([counts[g] < FEW_LABELS for g in guesses], dtype=bool)
    return (votes == TAG) & other & unsure


def answer_kind(
    tagged: np.ndarray,
    head_tagged: np.ndarray,
    votes: np.ndarray,
    relabel: np.ndarray | None = None,
) -> np.ndarray:
    """The kind (TAG_KEPT ... RELABELLED) of each answer ``tagged``, given the head's own
    decision ``head_tagged``, the groups' ``votes`` and the rows they ``relabel``."""
    voted = np.where(tagged, TAG_KEPT, UNKNOWN_KEPT) + (tagged != head_tagged)
    kind = np.where(votes != HEAD, voted, np.where(tagged, HEAD_TAG, HEAD_UNKNOWN))
    return kind if relabel is None else np.where(tagged & relabel, RELABELLED, kind)


def replay_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, hidden): positions in ``labels`` of the labels a replay keeps and hides:
    REPLAY_CLASSES of the classes whole, REPLAY_LABELS of every other class's labels."""
    rng = np.random.default_rng(seed)
    names = np.unique(labels)
    whole = (
        rng.choice(names, max(1, round(REPLAY_CLASSES * len(names))), replace=False)
        if len(names) >= 3
        else names[:0]
    )
    hidden = [np.flatnonzero(np.isin(labels, whole))]
    for name in np.setdiff1d(names, whole):
        of = np.flatnonzero(labels == name)
        if len(of) >= 2:
            hidden.append(rng.choice(of, max(1, round(REPLAY_LABELS * len(of))), replace=False))
    out = np.sort(np.concatenate(hidden)).astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), out), out


def fit_shifts(confidence: np.ndarray, right: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """For each kind of answer, the logit shift b that maximises the likelihood of
    ``right`` under sigmoid(logit(confidence) + b), with the ridge SHIFT_PRIOR; 0 for a
    kind with no rows."""
    z = _logit(confidence)
    shifts = np.zeros(CELLS)
    for k in range(CELLS):
        zk, rk = z[kind == k], right[kind == k].astype(float)
        b = 0.0
        for _ in range(50):  # Newton on a concave one-dimensional likelihood
            p = 1.0 / (1.0 + np.exp(-(zk + b)))
            step = (np.sum(rk - p) - SHIFT_PRIOR * b) / (np.sum(p * (1 - p)) + SHIFT_PRIOR)
            b += step
            if abs(step) < 1e-6:
                break
        shifts[k] = b
    return shifts


def shifted(confidence: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``confidence`` moved by ``shift`` in logit."""
    return 1.0 / (1.0 + np.exp(-(_logit(confidence) + shift)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))
