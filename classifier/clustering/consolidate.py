"""One proposal per class: the last steps of discovery
(:func:`lookalike.classifier.clustering.discovery.cluster_vectors`).

The greedy merges cut a large class into several pure pieces, each "nearest label X at
0.80-0.95" (issue 17: large classes in 5-7 pieces, ARI 0.47 on held-out classes). Here a
new piece that close to a label joins it, a piece that links to a label's group through
its nearest neighbours joins it (:func:`fold_by_links`), pieces of one never-labelled
class join each other, a group holding the nearest neighbours of a label with few
labelled images joins it (:func:`fold_by_label_links`), and what is left below the
minimum size is noise. Measured on the
long-tailed dev splits (``scripts/bench_clusters.py --long-tailed``): new categories sat
at 0.48-0.79 to their nearest label, pieces of labelled classes mostly above 0.8; by
cosine alone, pieces of a labelled class and never-labelled look-alike classes overlap
at 0.68-0.80, which the links tell apart better.

``assign`` is, per unlabelled point, a class id (< n_classes), a new cluster id
(>= n_classes) or -1 (noise).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.classifier.clustering.params import ClusterParams
from lookalike.indexer.numerics import l2_normalize

Vectors = npt.NDArray[np.float32]
Assignment = npt.NDArray[np.int64]


def fold_into_labels(
    unlabelled: Vectors,
    labelled: Vectors,
    label_ids: npt.NDArray,
    assign: Assignment,
    n_classes: int,
    p: ClusterParams,
) -> Assignment:
    """A new cluster whose centroid lies within ``p.fold_similarity`` (cosine, original
    space) of a labelled class's prototype is more of that class: one proposal per label."""
    if not n_classes or p.fold_similarity is None:
        return assign
    sums = np.zeros((n_classes, unlabelled.shape[1]))
    np.add.at(sums, label_ids, labelled)
    protos = l2_normalize(sums)
    out = assign.copy()
    for c in np.unique(assign[assign >= n_classes]):
        centre = l2_normalize(unlabelled[assign == c].sum(0, dtype=np.float64)[None])[0]
        sims = protos @ centre
        best = int(sims.argmax())
        if sims[best] >= p.fold_similarity:
            out[assign == c] = best
    return out


def join_new_groups(
    unlabelled: Vectors, assign: Assignment, n_classes: int, p: ClusterParams
) -> Assignment:
    """New clusters whose centroids are within ``p.join_similarity`` (cosine) of each
    other are one category (a large class nobody labelled, cut in pieces): merged,
    closest pair first."""
    if p.join_similarity is None:
        return assign
    out = assign.copy()
    ids = [int(c) for c in np.unique(assign[assign >= n_classes])]
    sums = {c: unlabelled[assign == c].sum(0, dtype=np.float64) for c in ids}
    while len(sums) > 1:
        keys = list(sums)
        centres = l2_normalize(np.stack([sums[k] for k in keys]))
        sims = centres @ centres.T
        np.fill_diagonal(sims, -np.inf)
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[a, b] < p.join_similarity:
            break
        keep, gone = keys[a], keys[b]
        out[out == gone] = keep
        sums[keep] = sums[keep] + sums.pop(gone)
    return out


def drop_small(assign: Assignment, min_size: int, n_classes: int) -> npt.NDArray:
    """New clusters below ``min_size`` become noise (a label's group may be any size)."""
    ids, counts = np.unique(assign[assign >= n_classes], return_counts=True)
    out = assign.copy()
    out[np.isin(out, ids[counts < min_size])] = -1
    return out


def fold_by_links(
    nbrs: npt.NDArray[np.int64],
    assign: Assignment,
    label_ids: npt.NDArray,
    n_classes: int,
    p: ClusterParams,
) -> Assignment:
    """A new cluster joins the label whose group (its labelled images and the unlabelled
    images it holds) receives ``p.fold_share`` or more of the cluster members' links in
    the kNN graph ``nbrs`` (rows: the unlabelled, then the labelled vectors; -1: none),
    strongest first.

    Only pieces of ``settled_factor * min_size`` images or more, and at most
    ``p.fold_max_ratio`` the group's size: a big class cut in pieces leaves a smaller
    piece with many links into its body (Faces: 38-48 images of one person at 0.12-0.18
    of their links), while a class nobody labelled, as large as its look-alike, has few
    (kangaroo next to cougar: 0.02-0.08), though two look-alikes of similar size can have
    more (mayfly into dragonfly at a ratio of 0.5); a handful of images is too few to judge
    (Zipf-sized novel classes of 5-11 images would be lost). ``p.fold_share`` 0.08: a
    person's piece of a labelled Faces (33 images) stayed new at 0.1 on split 13.
    """
    if not n_classes or p.fold_share is None or not (assign >= n_classes).any():
        return assign
    return _fold_pieces(nbrs, assign, label_ids, n_classes, p, into_new=False)


def fold_by_label_links(
    nbrs: npt.NDArray[np.int64],
    assign: Assignment,
    label_ids: npt.NDArray,
    n_classes: int,
    p: ClusterParams,
) -> Assignment:
    """A new cluster joins the label of fewer than ``p.label_links_max`` labels whose
    labelled images send ``p.label_link_share`` or more of their kNN links (graph
    ``nbrs``: rows the unlabelled, then the labelled vectors) into it.

    A class with a label or a few has no spread to join its own images by
    (``rho_join``), so they form a "new" group beside their label, whose centroid is
    no nearer to one labelled image than a look-alike class's (:func:`fold_into_labels`
    at 0.8 takes neither); but the labelled images' own nearest neighbours lie in it,
    where a look-alike class nobody labelled receives few of them.
    """
    share_bar, most = p.label_link_share, p.label_links_max
    n = len(assign)
    if share_bar is None or not n_classes or not (assign >= n_classes).any():
        return assign
    labels = np.asarray(label_ids, np.int64)
    counts = np.bincount(labels, minlength=n_classes)
    out = assign.copy()
    k = nbrs.shape[1] - 1
    for c in np.flatnonzero((counts > 0) & (counts < most)):
        rows = n + np.flatnonzero(labels == c)
        links = nbrs[rows].ravel()
        links = links[(links >= 0) & (links < n)]  # to unlabelled images
        target = out[links]
        target = target[target >= n_classes]
        if not len(target):
            continue
        ids, got = np.unique(target, return_counts=True)
        best = int(np.argmax(got))
        if got[best] >= share_bar * k * len(rows):
            out[out == ids[best]] = c
    return out


def join_by_links(
    nbrs: npt.NDArray[np.int64],
    assign: Assignment,
    label_ids: npt.NDArray,
    n_classes: int,
    p: ClusterParams,
) -> Assignment:
    """:func:`fold_by_links` between new clusters: a new piece of ``settled_factor *
    min_size`` images or more, at most ``p.fold_max_ratio`` the size of another new
    cluster, joins it when ``p.join_share`` or more of its members' kNN links land in it.

    A large class nobody labelled is cut like a labelled one (Faces never labelled:
    one person's 35-36 images apart from the other 395, on splits 7 and 8 of
    ``bench_clusters.py --long-tailed``: ARI 0.905 where a whole Faces gives 0.95),
    and its centroid is no closer than a look-alike's (0.8 joins neither). The size
    ratio keeps two never-labelled look-alikes of similar size apart (chair and
    windsor chair). ``p.join_share`` 0.08: that person's piece sent 0.094 of its links
    to the rest of Faces on split 8.
    """
    if p.join_share is None or (assign >= n_classes).sum() == 0:
        return assign
    return _fold_pieces(nbrs, assign, label_ids, n_classes, p, into_new=True)


def _fold_pieces(nbrs, assign, label_ids, n_classes, p, into_new: bool) -> Assignment:
    """Fold new pieces into the group (a label's, or with ``into_new`` another new
    cluster) receiving the largest share of their kNN links; see :func:`fold_by_links`."""
    group = np.concatenate([assign, np.asarray(label_ids, np.int64)])
    count = int(group.max()) + 1
    src = np.repeat(group, nbrs.shape[1])
    dst = np.where(nbrs.ravel() >= 0, group[np.maximum(nbrs.ravel(), 0)], -1)
    keep = (src >= n_classes) & (dst >= n_classes if into_new else (dst >= 0) & (dst < n_classes))
    keep &= src != dst
    # Links per (group, group) pair, counted sparsely (a dense groups x groups matrix
    # would hold 3.2 GB at 20,000 groups); each group's most linked group, the lowest
    # number among equals.
    codes, counts = np.unique(src[keep] * count + dst[keep], return_counts=True)
    src_of, dst_of = codes // count, codes % count
    order = np.lexsort((dst_of, -counts, src_of))
    first = order[np.r_[True, src_of[order][1:] != src_of[order][:-1]]] if len(order) else order
    most_linked = np.full(count, -1, np.int64)
    most_links = np.zeros(count)
    most_linked[src_of[first]] = dst_of[first]
    most_links[src_of[first]] = counts[first]
    size = np.bincount(group[group >= 0], minlength=count).astype(float)
    bar = p.join_share if into_new else p.fold_share
    out = assign.copy()
    piece = np.arange(n_classes, count)
    piece = piece[size[piece] >= p.settled_factor * p.min_size]
    # Strongest share first: a fold makes the group larger, which the ratio sees.
    share = most_links[piece] / ((nbrs.shape[1] - 1) * size[piece])
    home = np.arange(count)  # where each group's members are now
    for row in np.argsort(-share, kind="stable"):
        c = int(piece[row])
        if share[row] <= 0 or share[row] < bar:
            continue
        target = int(home[most_linked[c]])
        if home[c] != c or target == c:
            continue
        if size[c] <= p.fold_max_ratio * size[target]:
            out[out == c] = target
            size[target] += size[c]
            home[home == c] = target
    return out


def vote_reassign(
    nbrs: npt.NDArray[np.int64],
    assign: Assignment,
    label_ids: npt.NDArray,
    p: ClusterParams,
) -> Assignment:
    """Each unlabelled image moves to the group most of its kNN neighbours are in (rows
    of ``nbrs``: the unlabelled, then the labelled vectors, each itself included; a
    labelled neighbour votes for its label, noise votes for nothing) when that group
    holds ``p.vote_share`` or more of its neighbours; a noise image joins it the same
    way. ``p.vote_passes`` synchronous passes.
    """
    if p.vote_share is None or not len(assign):
        return assign
    n = len(assign)
    k = nbrs.shape[1]
    rows = np.arange(n)
    out = assign.copy()
    for _ in range(p.vote_passes):
        group = np.concatenate([out, np.asarray(label_ids, np.int64)])
        nb = nbrs[:n]
        votes = np.where((nb >= 0) & (nb != rows[:, None]), group[np.maximum(nb, 0)], -1)
        # The mode of each row: how many of its columns hold each column's group.
        same = (votes[:, :, None] == votes[:, None, :]) & (votes[:, :, None] >= 0)
        count = same.sum(2)
        best = count.argmax(1)
        top, winner = count[rows, best], votes[rows, best]
        move = (top >= p.vote_share * (k - 1)) & (winner >= 0) & (winner != out)
        if not move.any():
            break
        out[move] = winner[move]
    return out
