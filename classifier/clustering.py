"""Discovering categories: cluster the images nobody labelled, using the labels there are.

Pure numpy + FAISS; no catalog, no files. How (measured on the dev embeddings over
random class splits, see scripts/bench_clusters.py and the issue's note):

1. **Geometry.** Vectors are projected on their first ``dim`` principal components
   (fitted on a sample) and L2-normalised again: cosine geometry without the noise
   dimensions. Raw 1,280-d vectors cluster worse and slower. Then, with 5+ labelled
   classes, the within-class covariance of the labelled images is whitened away
   (:func:`classifier.clustering_metric.whiten_within`): what varies inside a class
   counts less, what separates classes more -- and that carries over to unseen classes.
2. **Graph-restricted exact average linkage.** The unlabelled *and* the labelled images
   are merged bottom-up, but only along the edges of a k-nearest-neighbour graph (FAISS),
   so nothing is N x N. The linkage is exact anyway: the mean cosine similarity of two
   groups of unit vectors is ``sum_a . sum_b / (n_a n_b)``, so a group is just its sum
   vector. Each round merges every pair of groups that are each other's nearest allowed
   neighbour (reciprocal nearest neighbours), until no pair is closer than the
   threshold; then the kNN graph of the groups' centroids gives new candidate pairs
   (so bursts of near-duplicates can still merge outward), until nothing merges. The
   threshold lies half-way between the labelled classes' median spread and their median
   distance to the nearest other class (:func:`~classifier.clustering_metric.
   midpoint_threshold`): no scale constant, and it follows the geometry.
3. **The human labels take part.** Groups holding different labels never merge. An
   unlabelled group of ``min_size`` or more joins a labelled one only if their mutual
   distance is close to the groups' own spreads (``rho_join``), so a tight unnamed
   look-alike class (windsor chairs next to labelled chairs) stays apart, while the
   unlabelled images of a labelled class join it.
4. **Unnamed groups next to a class.** A left-over group whose distance to a labelled
   class's group is within ``rho_class`` of their spreads is "more of" that class.
5. **Noise, second pass.** Points left alone join the labelled class their nearest
   labelled neighbours vote for when the vote is as strong as what labelled images of
   one class score against the *other* classes (a threshold calibrated leave-one-out).
6. **Refinement.** Three nearest-centroid passes over the clustered images (class
   centroids include their labelled images) undo boundary mistakes of the greedy merges.
7. **Rejected clusters** (``apart``): a cluster keeps at most one of their members.

Measured (``python scripts/bench_clusters.py --from-library LIB --seeds 0,1,2,3,4``, dev
data, with the 100 distractors): before whitening, midpoint cut and refinement ARI 0.81,
9.0 of 10 never-labelled classes found (min 8), 4.8% noise; now ARI 0.85 (min 0.81),
9.2 found (min 8), 8.3% noise (max 10.9%, the distractors being 5.9% of the images);
HDBSCAN PCA-50 baseline 0.66, 6.8 found, 25% noise. Without distractors: ARI 0.83 ->
0.87, 9.4 found, 5.8% noise (max 8.0%). Ablations (numpy replica of the protocol, with
distractors): no whitening 0.833, no refinement 0.822. 100k vectors: 36 s, ~1.2x the
version before in an A/B run.
Still weak: two never-labelled look-alike classes (chair and windsor chair) merge, and
diffuse classes (chair) scatter; labelled-class images the features confuse (~6%) are
noise or misplaced -- a closed-set nearest-centroid classifier gets only 94% of them
right with these embeddings, which bounds ARI near 0.9 here.
Tried and dropped: HDBSCAN in cosine geometry (no better than the baseline),
bimodality splits of clusters (a 2-means split ratio separates two classes no better
than it splits one: median 1.66 inside a class, 1.2-1.5 for merged look-alike pairs),
attaching noise to new clusters (no effect), a spread-ratio test between unlabelled
groups (classes' sub-modes then stay apart: 7.4 found), removing members far from
their centroid relative to the cluster's spread (drops right members: ARI 0.78),
choosing the cut by hiding half the labelled classes and scoring how they re-cluster
(noisy with 10 labels a class, and 12x slower: no gain), ImageNet class probabilities
as extra features (closed-set accuracy 0.937 -> 0.940 at best, worse at more weight),
other PCA sizes (32, 48, 96, 128: all worse at the same cut).

The result: clusters that are new categories (``label is None``), groups that are more
of a labelled class (``label`` set), and noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from classifier.clustering_metric import midpoint_threshold, refine, whiten_within

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ClusterParams:
    """Settings of :func:`cluster_vectors`; the defaults are the measured ones."""

    min_size: int = 5  # smallest group proposed as a new category
    dim: int = 64  # principal components kept (cosine geometry after projection)
    neighbours: int = 10  # degree of the kNN graph merges run along
    whiten: bool = True  # within-class covariance normalisation from the labels
    threshold: float | None = None  # mean cosine distance cut; None: from the labels
    default_threshold: float = 0.6  # used when there are too few labels to calibrate
    threshold_scale: float = 1.6  # cut / median spread assumed by the floor below
    rho_join: float = 1.2  # unlabelled group joins a labelled one within this x spread
    rho_class: float = 1.2  # left-over group is "more of" a class within this x spread
    spread_floor: float = 0.5  # spreads below this x a typical class's count as that
    attach_quantile: float = 0.9  # noise joins a class scoring above this quantile
    refine_passes: int = 3  # nearest-centroid passes over the clustered images
    pca_sample: int = 10_000  # vectors the projection is fitted on
    exact_graph_max: int = 20_000  # above this many vectors the kNN graph uses an IVF
    seed: int = 0


class Cluster(NamedTuple):
    members: Indices  # indices into the unlabelled vectors
    label: str | None  # the human label this group is more of; None: a new category
    cohesion: float  # mean pairwise cosine similarity of the members (original space)
    representatives: Indices  # up to 6 members nearest the centroid, best first
    nearest_label: str | None  # the human label whose centroid is nearest
    nearest_label_similarity: float | None  # cosine between the two centroids
    promise: float  # ranking score: large, cohesive, far from existing labels


class Clustering(NamedTuple):
    clusters: list[Cluster]  # new categories first, most promising first
    noise: Indices
    threshold: float  # the linkage threshold used


def cluster_vectors(
    unlabelled: Vectors,
    labelled: Vectors | None = None,
    labels: list[str] | None = None,
    params: ClusterParams | None = None,
    apart: list[Indices] | None = None,
) -> Clustering:
    """Cluster ``unlabelled`` (L2-normalised rows) with the help of labelled vectors.

    Args:
        unlabelled: (n, d) vectors of the images without a human label.
        labelled: (m, d) vectors of labelled images, or None.
        labels: their m labels.
        params: settings; ClusterParams() when None.
        apart: groups of unlabelled indices that must not be proposed together again
            (rejected clusters): a cluster keeps at most one member of each.

    Returns:
        Clustering: clusters (new categories first, then groups of labelled classes,
        each by promise) and the noise indices.
    """
    p = params or ClusterParams()
    unlabelled = np.asarray(unlabelled, dtype=np.float32)
    n = len(unlabelled)
    if labelled is None or labels is None or len(labels) == 0:
        labelled = np.zeros((0, unlabelled.shape[1]), np.float32)
        labels = []
    classes, label_ids = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    classes = [str(c) for c in classes]
    if n == 0:
        return Clustering([], np.zeros(0, np.int64), p.default_threshold)
    everything = np.vstack([unlabelled, np.asarray(labelled, np.float32)])
    z = project(everything, p)
    white = whiten_within(z, z[n:], label_ids) if p.whiten and len(labels) else None
    z = z if white is None else white
    zu, zl = z[:n], z[n:]
    threshold = p.threshold or calibrate_threshold(zl, label_ids, p)
    leaf_label = np.concatenate([np.full(n, -1), label_ids]).astype(np.int64)
    group = np.arange(len(z))
    if len(z) > 1:
        edges = knn_edges(z, p)
        group, group_label = merge_groups(z, leaf_label, edges, threshold, p)
    else:
        group_label = leaf_label.copy()
    assign = _assign(zu, zl, label_ids, len(classes), group[:n], group_label, threshold, p)
    assign = refine(zu, zl, label_ids, assign, len(classes), p.min_size, p.refine_passes)
    assign = _keep_apart(assign, zu, apart or [], p.min_size, len(classes))
    return _describe(unlabelled, labelled, label_ids, classes, assign, threshold)


# -- geometry ---------------------------------------------------------------------------
def project(vectors: Vectors, p: ClusterParams) -> Vectors:
    """PCA to ``p.dim`` (fitted on a sample), then L2-normalised."""
    n, d = vectors.shape
    dim = min(p.dim, d, max(n - 1, 1))
    if dim >= d or n < 3:
        return _normalised(vectors.astype(np.float32))
    rng = np.random.default_rng(p.seed)
    sample = vectors if n <= p.pca_sample else vectors[rng.choice(n, p.pca_sample, False)]
    mean = sample.mean(0)
    basis = _top_components(sample - mean, dim, p.seed).T
    # (x - mean) @ basis without the n x d temporary.
    return _normalised(vectors @ basis - mean @ basis)


def _top_components(x: npt.NDArray, k: int, seed: int, iters: int = 4) -> Vectors:
    """The k leading right singular vectors of x (randomised range finder, Halko et al.).

    A full d x d eigendecomposition costs seconds at d = 1280; this a fraction of one,
    for the same leading components, and without importing scikit-learn (seconds too).
    """
    rng = np.random.default_rng(seed)
    x = x.astype(np.float32)
    q = x @ rng.standard_normal((x.shape[1], min(k + 10, min(x.shape)))).astype(np.float32)
    for _ in range(iters):
        q, _r = np.linalg.qr(q)
        q = x @ (x.T @ q)
    q, _r = np.linalg.qr(q)
    _u, _s, vt = np.linalg.svd(q.T @ x, full_matrices=False)
    return vt[:k].astype(np.float32)


def knn_edges(z: Vectors, p: ClusterParams) -> npt.NDArray[np.int64]:
    """Undirected edges (i < j) of the k-nearest-neighbour graph, each once."""
    import faiss

    n, d = z.shape
    k = min(p.neighbours, n - 1)
    z = np.ascontiguousarray(z, dtype=np.float32)
    if n <= p.exact_graph_max:
        index = faiss.IndexFlatIP(d)
    else:
        lists = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(p.seed)
        # ~40 training points per list (FAISS's minimum) and 4 lists probed: the graph
        # only needs the near neighbours, which sit in the same or adjacent lists.
        index.train(z[rng.choice(n, min(n, lists * 40), False)])
        index.nprobe = 4
    index.add(z)
    _sims, nbrs = index.search(z, k + 1)
    src = np.repeat(np.arange(n, dtype=np.int64), k + 1)
    dst = nbrs.ravel().astype(np.int64)
    ok = (dst >= 0) & (dst != src)
    lo, hi = np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])
    code = np.unique(lo * n + hi)
    return np.stack([code // n, code % n], 1)


def calibrate_threshold(zl: Vectors, label_ids: npt.NDArray, p: ClusterParams) -> float:
    """The linkage cut half-way between the labelled classes' typical spread and their
    typical distance to the nearest other class (:func:`midpoint_threshold`)."""
    cut = midpoint_threshold(zl, label_ids)
    if cut is None:
        return p.default_threshold
    return float(np.clip(cut[0], 0.35, 0.8))


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
        edges = knn_edges(_normalised(sums), p)


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
    la, lb = lab[a], lab[b]
    ok = (dist <= threshold) & ~((la >= 0) & (lb >= 0) & (la != lb))
    mixed = (la >= 0) != (lb >= 0)
    if mixed.any():
        spread = _spreads(sums, size)
        ref = np.maximum(_pooled(spread[a], spread[b], size[a], size[b]), _floor(threshold, p))
        unlabelled_size = np.where(la >= 0, size[b], size[a])
        ok &= ~(mixed & (unlabelled_size >= p.min_size) & (dist > p.rho_join * ref))
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


# -- from groups to clusters ----------------------------------------------------------------
def _assign(
    zu, zl, label_ids, n_classes, group_u, group_label, threshold, p
) -> npt.NDArray[np.int64]:
    """Per unlabelled point: class id (< n_classes), new cluster id (>= n_classes) or -1."""
    floor = _floor(threshold, p)
    out = np.full(len(zu), -1, dtype=np.int64)
    joined = group_label[group_u]
    out[joined >= 0] = joined[joined >= 0]
    free_groups, counts = np.unique(group_u[joined < 0], return_counts=True)
    free = [np.flatnonzero(group_u == g) for g in free_groups[counts >= p.min_size]]
    next_id = n_classes
    class_stats = _class_stats(zu, zl, label_ids, out, n_classes)
    for members in free:
        c = _closest_class(zu[members], class_stats, p.rho_class, floor)
        if c is None:
            out[members] = next_id
            next_id += 1
        else:
            out[members] = c
    noise = np.flatnonzero(out < 0)
    if len(noise) and n_classes:
        cls, ok = attach_to_classes(zu[noise], zl, label_ids, p.attach_quantile)
        out[noise[ok]] = cls[ok]
    return out


def _class_stats(zu, zl, label_ids, out, n_classes):
    if not n_classes:
        return None
    d = zu.shape[1]
    sums = np.zeros((n_classes, d))
    np.add.at(sums, label_ids, zl)
    known = out >= 0
    np.add.at(sums, out[known], zu[known])
    size = np.bincount(label_ids, minlength=n_classes) + np.bincount(
        out[known], minlength=n_classes
    )
    return sums, size.astype(float), _spreads(sums, size.astype(float))


def _closest_class(members: Vectors, class_stats, rho: float, floor: float) -> int | None:
    if class_stats is None:
        return None
    sums, size, spread = class_stats
    s, n = members.sum(0), len(members)
    dist = 1.0 - (sums @ s) / (size * n)
    ratio = dist / np.maximum(_pooled(_spread(s, n), spread, n, size), max(floor, 1e-6))
    best = int(ratio.argmin())
    return best if ratio[best] <= rho else None


def attach_to_classes(points, zl, label_ids, quantile, k: int = 10, top: int = 3):
    """(class id, ok) per point: ok when its kNN class score passes the calibrated bar.

    A point's score for a class is the mean similarity of its ``top`` most similar
    labelled images of that class among its ``k`` nearest labelled images. The bar,
    from the labelled images themselves (leave one out): the ``quantile`` of their best
    score for a class *other* than their own -- a point must look as much like the class
    as labelled images of another class almost never do -- and at least the
    ``1 - quantile`` quantile of the score for their own class (with few, distinct
    classes the first bar alone is low).
    """
    cls, score = _knn_scores(points, zl, label_ids, k, top)
    cal, cal_ids = zl, label_ids
    if len(zl) > 2000:
        pick = np.random.default_rng(0).choice(len(zl), 2000, replace=False)
        cal, cal_ids = zl[pick], label_ids[pick]
    _c, other = _knn_scores(cal, zl, label_ids, k, top, own=cal_ids, want_own=False)
    _c, own = _knn_scores(cal, zl, label_ids, k, top, own=cal_ids, want_own=True)
    # Labelled images with no other class among their neighbours score "not at all".
    other = np.where(np.isfinite(other), other, -1.0)
    own = own[np.isfinite(own)]
    bar = float(np.quantile(other, quantile))
    if len(own):
        bar = max(bar, float(np.quantile(own, 1.0 - quantile)))
    return cls, score >= bar


def _knn_scores(points, zl, label_ids, k, top, own=None, want_own=False):
    """Best class score per point; with ``own`` (leave-one-out calibration rows), the
    score for the row's own class (``want_own``) or for the best other class."""
    import faiss

    index = faiss.IndexFlatIP(zl.shape[1])
    index.add(np.ascontiguousarray(zl, dtype=np.float32))
    kk = min(k + int(own is not None), len(zl))
    sims, nbrs = index.search(np.ascontiguousarray(points, dtype=np.float32), kk)
    best_cls = np.zeros(len(points), dtype=np.int64)
    best = np.full(len(points), -np.inf)
    for row in range(len(points)):
        s, nb = sims[row], nbrs[row]
        keep = nb >= 0
        if own is not None:
            keep &= s < 0.99999  # the point itself
        s, ids = s[keep], label_ids[nb[keep]]
        for c in np.unique(ids):
            if own is not None and (c == own[row]) != want_own:
                continue
            score = float(np.sort(s[ids == c])[::-1][:top].mean())
            if score > best[row]:
                best[row], best_cls[row] = score, c
    return best_cls, best


def _keep_apart(assign, zu, apart, min_size, n_classes) -> npt.NDArray[np.int64]:
    """A cluster keeps at most one member (the most central) of each rejected group."""
    if not apart:
        return assign
    out = assign.copy()
    for grp in apart:
        grp = np.asarray([g for g in grp if 0 <= g < len(out)], dtype=np.int64)
        for c in np.unique(out[grp]):
            if c < 0:
                continue
            inside = grp[out[grp] == c]
            if len(inside) > 1:
                centre = zu[out == c].sum(0)
                keep = inside[np.argmax(zu[inside] @ centre)]
                out[inside[inside != keep]] = -1
    ids, counts = np.unique(out[out >= n_classes], return_counts=True)
    out[np.isin(out, ids[counts < min_size])] = -1
    return out


def _describe(unlabelled, labelled, label_ids, classes, assign, threshold) -> Clustering:
    groups = []
    for c in np.unique(assign[assign >= 0]):
        groups.append((np.flatnonzero(assign == c), classes[c] if c < len(classes) else None))
    labels = [classes[i] for i in label_ids]
    clusters = describe(unlabelled, labelled, labels, groups)
    return Clustering(clusters, np.flatnonzero(assign < 0), float(threshold))


def describe(
    unlabelled: Vectors,
    labelled: Vectors,
    labels: list[str],
    groups: list[tuple[Indices, str | None]],
) -> list[Cluster]:
    """Clusters (cohesion, representatives, nearest label, promise) for member groups.

    ``groups`` are (indices into ``unlabelled``, the label the group is more of or
    None). Returns them new categories first, each part most promising first.
    """
    classes = sorted(set(labels))
    protos = None
    if classes:
        index = {c: i for i, c in enumerate(classes)}
        sums = np.zeros((len(classes), unlabelled.shape[1]))
        np.add.at(sums, np.array([index[x] for x in labels]), labelled)
        protos = _normalised(sums)
    out = []
    for members, label in groups:
        members = np.asarray(members, dtype=np.int64)
        vecs = unlabelled[members].astype(np.float64)
        s = vecs.sum(0)
        cohesion = 1.0 - _spread(s, len(members)) if len(members) > 1 else 1.0
        centre = s / max(np.linalg.norm(s), 1e-12)
        reps = members[np.argsort(-(vecs @ centre), kind="stable")[:6]]
        near, sim = None, None
        if protos is not None:
            sims = protos @ centre
            j = classes.index(label) if label in classes else int(sims.argmax())
            near, sim = classes[j], float(sims[j])
        promise = float(np.log2(1 + len(members)) * cohesion * (1 - max(sim or 0.0, 0.0)))
        out.append(Cluster(members, label, float(cohesion), reps, near, sim, round(promise, 6)))
    out.sort(key=lambda cl: (cl.label is not None, -cl.promise, int(cl.members.min())))
    return out


# -- keeping ids and decisions across re-clustering ----------------------------------------
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
    centres = _normalised(np.stack([v.sum(0) for v in part_vectors]))
    choice = np.empty(len(members), dtype=np.int64)
    for i, m in enumerate(members):
        inside = [k for k, part in enumerate(parts) if int(m) in part]
        choice[i] = inside[0] if inside else int(np.argmax(centres @ vectors[i]))
    return [members[choice == k] for k in range(len(parts)) if (choice == k).any()]


def two_parts(vectors: Vectors, seed: int = 0) -> list[Indices] | None:
    """Split a cluster finer: spherical 2-means; None when it cannot be divided."""
    if len(vectors) < 2:
        return None
    z = _normalised(vectors)
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
        centres = _normalised(np.stack([z[choice == k].sum(0) for k in (0, 1)]))
    if choice.min() == choice.max():
        return None
    return [np.flatnonzero(choice == 0), np.flatnonzero(choice == 1)]


# -- small helpers ------------------------------------------------------------------------
def _normalised(a: npt.NDArray) -> Vectors:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return (a / np.maximum(norms, 1e-12)).astype(np.float32)


def _spread(s: npt.NDArray, n: float) -> float:
    """Mean pairwise cosine distance of n unit vectors whose sum is s (0 for one)."""
    return float(1.0 - (s @ s - n) / (n * (n - 1))) if n > 1 else 0.0


def _spreads(sums: npt.NDArray, size: npt.NDArray) -> npt.NDArray:
    sq = np.einsum("ij,ij->i", sums, sums)
    pairs = np.maximum(size * (size - 1), 1)
    return np.where(size > 1, 1.0 - (sq - size) / pairs, 0.0)


def _floor(threshold: float, p: ClusterParams) -> float:
    """The least spread a group is taken to have (bursts of near-duplicates are tight)."""
    return p.spread_floor * threshold / p.threshold_scale


def _pooled(wa, wb, na, nb):
    """Spread of two groups pooled over their pairs (how spread-out they are inside)."""
    pa, pb = na * (na - 1) / 2, nb * (nb - 1) / 2
    return (wa * pa + wb * pb) / np.maximum(pa + pb, 1)
