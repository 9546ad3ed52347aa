"""The linkage that grows clusters: a kNN graph, and average-linkage merges along it.

Helpers of :mod:`lookalike.classifier.clustering.discovery` (its step 2): :func:`knn_edges` is the
k-nearest-neighbour graph (FAISS); :func:`merge_groups` merges reciprocal nearest
neighbours along its edges until none is closer than the threshold, then along the kNN
graph of the groups' centroids, until nothing merges. A group is its sum vector: the
mean cosine similarity of two groups of unit vectors is ``sum_a . sum_b / (n_a n_b)``.
A merge is refused across two labels, between an unnamed group and a labelled one much
farther apart than their spreads (``rho_join``), and between two unnamed groups of
``settled_factor * min_size`` images or more that are as far apart, for their spreads,
as labelled classes are from their nearest other class (``rho_apart``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.classifier.clustering.groups import pooled_spread, spreads
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.classifier.neighbours import knn
from lookalike.indexer.numerics import l2_normalize

Vectors = npt.NDArray[np.float32]


def neighbour_table(z: Vectors, p: ClusterParams) -> npt.NDArray[np.int64]:
    """Each row's ``p.neighbours`` nearest rows (FAISS), itself included (-1: none)."""
    k = min(p.neighbours, len(z) - 1)
    return knn(z, k + 1, exact_max=p.exact_graph_max, seed=p.seed)[1]


def knn_edges(
    z: Vectors, p: ClusterParams, nbrs: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Undirected edges (i < j) of the k-nearest-neighbour graph, each once
    (``nbrs``: the :func:`neighbour_table` of ``z`` when already computed)."""
    n = len(z)
    nbrs = neighbour_table(z, p) if nbrs is None else nbrs
    src = np.repeat(np.arange(n, dtype=np.int64), nbrs.shape[1])
    dst = nbrs.ravel().astype(np.int64)
    ok = (dst >= 0) & (dst != src)
    lo, hi = np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])
    code = np.unique(lo * n + hi)
    return np.stack([code // n, code % n], 1)


# -- merging ------------------------------------------------------------------------------
def merge_groups(
    z: Vectors, leaf_label: npt.NDArray, edges: npt.NDArray, threshold: float, p: ClusterParams
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Reciprocal-nearest-neighbour average linkage along ``edges``, then along the kNN
    graph of the groups' centroids until nothing merges.

    Returns each point's group number and each group's label id (-1: none). Without the
    later passes, a burst of more than ``neighbours`` near-duplicates has edges only among
    itself and could never join its class.
    """
    group = np.arange(len(z))
    # float32 sums: gathers over ~10 edges a point dominate the cost; the distances
    # need no more than 6 digits.
    sums = z.astype(np.float32)
    size = np.ones(len(z))
    lab = leaf_label.copy()
    while True:
        before = len(sums)
        renumber, sums, size, lab = _merge_pass(edges, sums, size, lab, threshold, p)
        group = renumber[group]
        if len(sums) == before or len(sums) < 2:
            return group, lab
        edges = knn_edges(l2_normalize(sums), p)


def _merge_pass(e, sums, size, lab, threshold, p):
    """Merge along edges until no allowed pair is left; returns (old -> new group, ...).

    Only the edges of groups that just merged are re-measured; an edge refused (too far,
    two labels, a look-alike class) is dropped for this pass.
    """
    renumber_all = np.arange(len(sums))
    dist = _distances(e, sums, size)
    keep = _allowed(dist, e[:, 0], e[:, 1], sums, size, lab, threshold, p)
    e, dist = e[keep], dist[keep]
    while len(e):
        best = _nearest_neighbour(e, dist, len(sums))
        i = np.flatnonzero(best >= 0)
        winners = i[(best[best[i]] == i) & (i < best[i])]
        if not len(winners):
            break
        losers = best[winners]
        sums[winners] += sums[losers]
        size[winners] += size[losers]
        lab[winners] = np.maximum(lab[winners], lab[losers])
        target = np.arange(len(sums))
        target[losers] = winners
        alive = np.ones(len(sums), bool)
        alive[losers] = False
        changed = ~alive
        changed[winners] = True
        renumber = (np.cumsum(alive) - 1)[target]  # monotone on the survivors
        touched = changed[e[:, 0]] | changed[e[:, 1]]
        sums, size, lab = sums[alive], size[alive], lab[alive]
        renumber_all = renumber[renumber_all]
        # Untouched edges keep their order, uniqueness and distance.
        fixed, fixed_dist = renumber[e[~touched]], dist[~touched]
        moved = np.sort(renumber[e[touched]], 1)
        moved = moved[moved[:, 0] != moved[:, 1]]
        code = np.unique(moved[:, 0] * len(sums) + moved[:, 1])
        moved = np.stack([code // len(sums), code % len(sums)], 1)
        moved_dist = _distances(moved, sums, size)
        ok = _allowed(moved_dist, moved[:, 0], moved[:, 1], sums, size, lab, threshold, p)
        e = np.concatenate([fixed, moved[ok]])
        dist = np.concatenate([fixed_dist, moved_dist[ok]])
    return renumber_all, sums, size, lab


def _distances(e: npt.NDArray, sums: npt.NDArray, size: npt.NDArray) -> npt.NDArray:
    """Mean pairwise cosine distance between the two groups of each edge."""
    out = np.empty(len(e))
    for start in range(0, len(e), 65536):  # chunks keep the gathered rows in cache
        a, b = e[start : start + 65536, 0], e[start : start + 65536, 1]
        dots = np.einsum("ij,ij->i", sums[a], sums[b])
        out[start : start + 65536] = 1.0 - dots / (size[a] * size[b])
    return out


def _allowed(dist, a, b, sums, size, lab, threshold, p) -> npt.NDArray[np.bool_]:
    """Which merges may happen: close enough, not two labels, and two groups that are
    each big enough to judge not as far apart, for their spreads, as two classes are."""
    la, lb = lab[a], lab[b]
    ok = (dist <= threshold) & ~((la >= 0) & (lb >= 0) & (la != lb))
    mixed = (la >= 0) != (lb >= 0)
    settled = p.settled_factor * p.min_size
    # Two unnamed groups of `settled` images each: look-alike classes (elephant and
    # rhino) lie within the cut, but farther apart than their spreads.
    both = (la < 0) & (lb < 0) & (np.minimum(size[a], size[b]) >= settled)
    if mixed.any() or both.any():
        spread = spreads(sums, size)
        pooled = pooled_spread(spread[a], spread[b], size[a], size[b])
        ref = np.maximum(pooled, p.spread_floor_at(threshold))
        unlabelled_size = np.where(la >= 0, size[b], size[a])
        ok &= ~(mixed & (unlabelled_size >= p.min_size) & (dist > p.rho_join * ref))
        if p.rho_apart is not None:
            ok &= ~(both & (dist > p.rho_apart * ref))
    return ok


def _nearest_neighbour(e: npt.NDArray, dist: npt.NDArray, count: int) -> npt.NDArray[np.int64]:
    """Each group's nearest allowed neighbour (-1: none)."""
    src = np.concatenate([e[:, 0], e[:, 1]])
    dst = np.concatenate([e[:, 1], e[:, 0]])
    # Farthest first, so the nearest is written last (NumPy keeps the last of repeated
    # indices); the stable sort makes ties deterministic.
    order = np.argsort(-np.concatenate([dist, dist]), kind="stable")
    best = np.full(count, -1, dtype=np.int64)
    best[src[order]] = dst[order]
    return best
