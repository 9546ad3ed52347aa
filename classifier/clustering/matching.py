"""Keeping cluster ids and review decisions across re-clustering.

Helpers of :mod:`lookalike.classifier.clustering.proposals` and ``.review``:
:func:`match_ids` gives a new cluster the id of the old one it overlaps,
:func:`partition_like` re-applies a reviewer's split to a re-clustered group, and
:func:`natural_parts` splits a cluster into its natural parts (:func:`two_parts` in two).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.indexer.numerics import l2_normalize

Vectors = npt.NDArray[np.float32]
Indices = npt.NDArray[np.int64]


def match_ids(
    old: dict[int, set[int]], new: list[set[int]], min_jaccard: float = 0.5
) -> list[int | None]:
    """For each new member set, the old id whose set it overlaps by >= min_jaccard, or None.

    Greedy on the best overlaps first; an old id is given to one new set at most.
    """
    owner: dict[int, list[int]] = {}
    for old_id, members in old.items():
        for m in members:
            owner.setdefault(m, []).append(old_id)
    pairs = []
    for k, members in enumerate(new):
        shared: dict[int, int] = {}
        for m in members:
            for old_id in owner.get(m, ()):
                shared[old_id] = shared.get(old_id, 0) + 1
        for old_id, inter in shared.items():
            jaccard = inter / (len(members) + len(old[old_id]) - inter)
            if jaccard >= min_jaccard:
                pairs.append((-jaccard, k, old_id))
    result: list[int | None] = [None] * len(new)
    used = set()
    for _j, k, old_id in sorted(pairs):
        if result[k] is None and old_id not in used:
            result[k] = old_id
            used.add(old_id)
    return result


def partition_like(
    members: Indices, vectors: Vectors, parts: list[set[int]], part_vectors: list[Vectors]
) -> list[Indices]:
    """Divide ``members`` (ids) as ``parts`` did: by membership, else by nearest centroid.

    Re-applies a reviewer's split to a re-clustered group; ``vectors`` are the members'.
    """
    centres = l2_normalize(np.stack([v.sum(0) for v in part_vectors]))
    choice = np.empty(len(members), dtype=np.int64)
    for i, m in enumerate(members):
        inside = [k for k, part in enumerate(parts) if int(m) in part]
        choice[i] = inside[0] if inside else int(np.argmax(centres @ vectors[i]))
    return [members[choice == k] for k in range(len(parts)) if (choice == k).any()]


def two_parts(vectors: Vectors, seed: int = 0) -> list[Indices] | None:
    """Split a cluster finer: spherical 2-means; None when it cannot be divided."""
    if len(vectors) < 2:
        return None
    z = l2_normalize(vectors)
    # Start from the member least like the centroid and the member least like it.
    a = int(np.argmin(z @ z.sum(0)))
    b = int(np.argmin(z @ z[a]))
    centres = z[[a, b]]
    choice = np.zeros(len(z), dtype=np.int64)
    for _ in range(50):
        new = np.argmax(z @ centres.T, axis=1)
        if (new == choice).all() and _ > 0:
            break
        choice = new
        if choice.min() == choice.max():
            return None
        centres = l2_normalize(np.stack([z[choice == k].sum(0) for k in (0, 1)]))
    if choice.min() == choice.max():
        return None
    return [np.flatnonzero(choice == 0), np.flatnonzero(choice == 1)]


def natural_parts(vectors: Vectors, min_size: int) -> list[Indices] | None:
    """Split a cluster into its natural parts, each of ``min_size`` or more; None when it
    cannot be divided so.

    HDBSCAN (``min_cluster_size = min_size``) on the members finds how many parts there
    are (two or more: not always two); its noise joins the part with the nearest
    centroid. When it sees a single part, spherical 2-means, if both halves are large
    enough.
    """
    # scikit-learn takes about a second to import: loaded when a split runs.
    from sklearn.cluster import HDBSCAN

    n = len(vectors)
    if n < 2 * min_size:
        return None
    z = l2_normalize(np.asarray(vectors, dtype=np.float32))
    found = HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(z)
    kinds = [k for k in np.unique(found) if k >= 0]
    if len(kinds) >= 2:
        centres = l2_normalize(np.stack([z[found == k].sum(0) for k in kinds]))
        choice = np.array([kinds.index(k) if k >= 0 else -1 for k in found])
        loose = choice < 0
        choice[loose] = np.argmax(z[loose] @ centres.T, axis=1)
        parts = [np.flatnonzero(choice == k) for k in range(len(kinds))]
        if min(len(p) for p in parts) >= min_size:
            return parts
    halves = two_parts(z)
    if halves is None or min(len(p) for p in halves) < min_size:
        return None
    return halves
