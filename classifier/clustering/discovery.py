"""Discovering categories: cluster the images nobody labelled, using the labels there are.

Pure numpy + FAISS; no catalog, no files. How (measured on the dev embeddings over
random class splits, see scripts/bench_clusters.py and the issue's note):

1. **Geometry.** Vectors are projected on their first ``dim`` principal components
   (fitted on a sample) and L2-normalised again: cosine geometry without the noise
   dimensions. Raw 1,280-d vectors cluster worse and slower. Then, with 5+ labelled
   classes, the within-class covariance of the labelled images is whitened away
   (:func:`lookalike.classifier.clustering.metric.whiten_within`): what varies inside a class
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
   distance to the nearest other class (:func:`~lookalike.classifier.clustering.metric.
   midpoint_threshold`): no scale constant, and it follows the geometry. The graph and
   the merges are :mod:`lookalike.classifier.clustering.linkage`.
3. **The human labels take part.** Groups holding different labels never merge. An
   unlabelled group of ``min_size`` or more joins a labelled one only if their mutual
   distance is close to the groups' own spreads (``rho_join``), so a tight unnamed
   look-alike class (windsor chairs next to labelled chairs) stays apart, while the
   unlabelled images of a labelled class join it. Two unnamed groups of
   ``settled_factor * min_size`` images or more stay apart when their distance, for their
   spreads, is what separates a labelled class from its nearest other class (the
   ``apart_quantile`` of that ratio): elephants and rhinos, both never labelled.
4. **Unnamed groups next to a class.** A left-over group whose distance to a labelled
   class's group is within ``rho_class`` of their spreads is "more of" that class.
5. **Noise, second pass.** Points left alone join the labelled class their nearest
   labelled neighbours vote for when the vote is as strong as what labelled images of
   one class score against the *other* classes (a threshold calibrated leave-one-out).
6. **Refinement.** Three nearest-centroid passes over the clustered images (class
   centroids include their labelled images) undo boundary mistakes of the greedy merges;
   then a noise point joins its nearest cluster if no farther than its farthest member.
7. **One proposal per class** (:mod:`lookalike.classifier.clustering.consolidate`): a
   new cluster within 0.8 (cosine of centroids) of a label's prototype is more of that
   label, new clusters within 0.8 of each other are one category, and new clusters below
   ``min_size`` are noise. On the long-tailed dev data (``bench_clusters.py
   --long-tailed``, 10 splits, 10 labels a class) this took the mean ARI from 0.87 to
   0.91 (worst 0.71 to 0.88), no class of 100+ images left in more than 2 pieces.
   Cosine alone leaves pieces of a large labelled class (a person of Faces at 0.73-0.79
   to the Faces prototype) as new categories, where never-labelled look-alikes sit too
   (elephant 0.75 to rhino): a new piece of ``settled_factor * min_size`` images or more,
   at most a quarter of a label's group, joins it when 0.1 of its members' kNN links land
   in the group (:func:`~lookalike.classifier.clustering.consolidate.fold_by_links`; the
   kNN graph of step 2). In-process, splits 0-9: ARI worst 0.883 -> 0.905, mean 0.910 ->
   0.933, novel classes found unchanged (worst 8, mean 9.3); Zipf unchanged in found.
   The same between new clusters (:func:`~lookalike.classifier.clustering.consolidate.
   join_by_links`, after the centroid join): a never-labelled Faces came as 395 + 36
   (one person) on splits 7 and 8. In-process, ARI worst / mean before -> after: splits
   0-9 0.905 / 0.933 -> 0.905 / 0.938; 10-19 0.899 / 0.930 -> 0.899 / 0.933; 20-29
   0.927 / 0.939 -> 0.937 / 0.941; Zipf 0-9 0.804 / 0.871 -> 0.804 / 0.877, 10-19
   unchanged (0.817 / 0.860); 1, 3, 30 labels 0.677 / 0.779 -> 0.693 / 0.788, 0.754 /
   0.847 -> 0.773 / 0.854, 0.913 / 0.944 -> 0.917 / 0.952; found and noise unchanged.
   Then a new cluster joins a label of 1-4 labels whose labelled images send 0.4 of
   their kNN links into it (:func:`~lookalike.classifier.clustering.consolidate.
   fold_by_label_links`): with so few labels a class's own images form a "new" group
   beside them (no spread to join by, and a centroid below 0.8 to one labelled image).
   After the joins between new clusters, so a class's pieces go to its label together
   (before them, half of a one-label Faces stayed new: ARI 0.853 -> 0.735 on split 3).
   Last, each image (noise too) moves to the group 0.7 of its kNN neighbours are in
   (:func:`~lookalike.classifier.clustering.consolidate.vote_reassign`): the stray images
   were the largest loss left (an oracle repair of them alone: +0.03-0.04 ARI a split).
   In-process, ARI worst / mean before -> after (found worst unchanged on every run):
   splits 0-9 0.905 / 0.938 -> 0.910 / 0.942; 10-19 0.899 / 0.933 -> 0.909 / 0.937;
   20-29 0.937 / 0.941 -> 0.941 / 0.944; Zipf 0-9 0.804 / 0.877 -> 0.837 / 0.900, 10-19
   0.817 / 0.860 -> 0.840 / 0.886; 1, 3, 30 labels 0.693 / 0.788 -> 0.703 / 0.802, 0.773 /
   0.854 -> 0.784 / 0.874, 0.917 / 0.952 -> 0.921 / 0.955. Noise about a third lower.
   A share of 0.6 lost never-labelled classes (Zipf 10-19: found worst 7 -> 5); moving
   only noise points, or never taking an image out of a new cluster, scored lower.
   The join by links at 0.08 of the links rather than 0.1 (a never-labelled Faces'
   one-person piece sent 0.094: 396 + 35 on split 8, 0.910 -> 0.945). In-process, ARI
   worst / mean 0.1 -> 0.08: splits 0-9 0.910 / 0.942 -> 0.937 / 0.946; 10-19 0.909 /
   0.937 -> 0.909 / 0.940; 20-29 unchanged (0.941 / 0.944); Zipf 0-9 and 10-19
   unchanged; 1, 3, 30 labels 0.703 / 0.802 -> 0.703 / 0.816, unchanged (0.784 /
   0.874), 0.921 / 0.955 -> 0.950 / 0.959; found and noise unchanged on every run. The
   fold into labels by links at 0.08 too (a labelled Faces' one-person piece of 33 stayed
   new on split 13): 10-19 0.909 / 0.940 -> 0.940 / 0.943, 3 labels 0.784 / 0.874 ->
   0.784 / 0.877, every other run above unchanged. Confirmed on splits neither was chosen
   on, both steps against 0.1 for both: 30-39 0.901 / 0.930 -> 0.936 / 0.944, 40-49
   0.906 / 0.937 -> 0.936 / 0.944, 3 labels on 10-19 0.771 / 0.888 -> 0.798 / 0.905, Zipf
   20-29 unchanged (0.813 / 0.877). A last nearest-centroid pass after the vote lost on
   every run (splits 0-9 worst 0.901).
8. **Rejected clusters** (``apart``): a cluster keeps at most one of their members.

Measured (dev embeddings, seeds 0-9, with / without the 100 distractors): ARI 0.851 /
0.870, 9.7 / 9.6 of 10 never-labelled classes found (min 9 / 8), noise 5.7% / 3.5%; before
the separation test and the attachment within reach 0.844 / 0.864, 9.4 / 9.5 (min 8),
8.6% / 5.9%; HDBSCAN PCA-50 0.66, 6.8 found, 25% noise. Ablations (before): no whitening
0.833, no refinement 0.822. 100k vectors: 6-7 s, as before the separation test.
Still weak: chair and windsor chair, both never labelled, are confused image by image;
the embeddings hold ARI down: putting every image in the class with the nearest true
centre (an oracle knowing all members) scores 0.93, a 5-NN vote over all true labels 0.89
(efficientnet-lite2's embeddings: 0.92).
Tried and dropped: HDBSCAN in cosine geometry (no better than the baseline),
bimodality splits of clusters (a 2-means split ratio separates two classes no better
than it splits one: median 1.66 inside a class, 1.2-1.5 for merged look-alike pairs),
the separation test between groups of 5+ (sub-modes stay apart: ARI -0.01), a lower cut
(x0.9: noise 11.7%), refinement by spread-normalised distance (a Gaussian mixture's
``d / r + log r``: ARI -0.02), removing members far from
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
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from lookalike.classifier.clustering.consolidate import (
    drop_small,
    fold_by_label_links,
    fold_by_links,
    fold_into_labels,
    join_by_links,
    join_new_groups,
    vote_reassign,
)
from lookalike.classifier.clustering.groups import pooled_spread, spread, spreads
from lookalike.classifier.clustering.linkage import knn_edges, merge_groups, neighbour_table
from lookalike.classifier.clustering.metric import (
    attach_within_reach,
    midpoint_threshold,
    refine,
    separation_ratio,
    whiten_within,
)
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.indexer.numerics import l2_normalize

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
Indices = npt.NDArray[np.int64]


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
    class_values, label_ids = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    classes = [str(c) for c in class_values]
    if n == 0:
        return Clustering([], np.zeros(0, np.int64), p.default_threshold)
    everything = np.vstack([unlabelled, np.asarray(labelled, np.float32)])
    z = project(everything, p)
    # Whitening needs few dimensions: in the raw 1,280 of a small library the within-class
    # scatter of a few labels is degenerate (the cut fell to its floor).
    low = z.shape[1] <= p.dim
    white = whiten_within(z, z[n:], label_ids) if p.whiten and low and len(labels) else None
    z = z if white is None else white
    zu, zl = z[:n], z[n:]
    threshold = p.threshold or calibrate_threshold(zl, label_ids, p)
    if p.rho_apart is None:
        ratio = separation_ratio(zl, label_ids, p.apart_quantile)
        p = replace(p, rho_apart=p.default_rho_apart if ratio is None else ratio)
    leaf_label = np.concatenate([np.full(n, -1), label_ids]).astype(np.int64)
    group = np.arange(len(z))
    nbrs = np.full((len(z), 1), -1, dtype=np.int64)
    if len(z) > 1:
        nbrs = neighbour_table(z, p)
        group, group_label = merge_groups(z, leaf_label, knn_edges(z, p, nbrs), threshold, p)
    else:
        group_label = leaf_label.copy()
    assign = _assign(zu, zl, label_ids, len(classes), group[:n], group_label, threshold, p)
    assign = refine(zu, zl, label_ids, assign, len(classes), p.min_size, p.refine_passes)
    assign = attach_within_reach(zu, zl, label_ids, assign, len(classes))
    assign = fold_into_labels(unlabelled, labelled, label_ids, assign, len(classes), p)
    assign = fold_by_links(nbrs, assign, label_ids, len(classes), p)
    assign = join_new_groups(unlabelled, assign, len(classes), p)
    assign = join_by_links(nbrs, assign, label_ids, len(classes), p)
    assign = fold_by_label_links(nbrs, assign, label_ids, len(classes), p)
    assign = vote_reassign(nbrs, assign, label_ids, p)
    assign = _keep_apart(assign, zu, apart or [], p.min_size, len(classes))
    assign = drop_small(assign, p.min_size, len(classes))
    return _describe(unlabelled, labelled, label_ids, classes, assign, threshold)


# -- geometry ---------------------------------------------------------------------------
def project(vectors: Vectors, p: ClusterParams) -> Vectors:
    """PCA to ``p.dim`` (fitted on a sample), then L2-normalised; a small library (under
    ``p.pca_min_rows`` vectors) keeps its own geometry: centring on the mean of a few
    classes makes images of one class look unrelated (15 + 15 images of two classes
    came out all noise)."""
    n, d = vectors.shape
    dim = min(p.dim, d, max(n - 1, 1))
    if dim >= d or n < max(3, p.pca_min_rows):
        return l2_normalize(vectors.astype(np.float32))
    rng = np.random.default_rng(p.seed)
    sample = vectors if n <= p.pca_sample else vectors[rng.choice(n, p.pca_sample, False)]
    mean = sample.mean(0)
    basis = _top_components(sample - mean, dim, p.seed).T
    # (x - mean) @ basis without the n x d temporary.
    return l2_normalize(vectors @ basis - mean @ basis)


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


def calibrate_threshold(zl: Vectors, label_ids: npt.NDArray, p: ClusterParams) -> float:
    """The linkage cut half-way between the labelled classes' typical spread and their
    typical distance to the nearest other class (:func:`midpoint_threshold`)."""
    cut = midpoint_threshold(zl, label_ids)
    if cut is None:
        return p.default_threshold
    return float(np.clip(cut[0], 0.35, 0.8))


# -- from groups to clusters ----------------------------------------------------------------
def _assign(
    zu, zl, label_ids, n_classes, group_u, group_label, threshold, p
) -> npt.NDArray[np.int64]:
    """Per unlabelled point: class id (< n_classes), new cluster id (>= n_classes) or -1."""
    floor = p.spread_floor_at(threshold)
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
    return sums, size.astype(float), spreads(sums, size.astype(float))


def _closest_class(members: Vectors, class_stats, rho: float, floor: float) -> int | None:
    if class_stats is None:
        return None
    sums, size, class_spread = class_stats
    s, n = members.sum(0), len(members)
    dist = 1.0 - (sums @ s) / (size * n)
    ref = pooled_spread(spread(s, n), class_spread, n, size)
    ratio = dist / np.maximum(ref, max(floor, 1e-6))
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
    import faiss  # a native library: loaded when clustering runs, not on import

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
        protos = l2_normalize(sums)
    out = []
    for members, label in groups:
        members = np.asarray(members, dtype=np.int64)
        vecs = unlabelled[members].astype(np.float64)
        s = vecs.sum(0)
        cohesion = 1.0 - spread(s, len(members)) if len(members) > 1 else 1.0
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
