"""What the human labels teach the clustering: a metric, a linkage cut, a last refinement.

Helpers of :mod:`classifier.clustering.discovery`, all derived from the labelled images' own
statistics (no constants fitted to a data set):

- :func:`whiten_within` -- within-class covariance normalisation (WCCN): directions in
  which images of one labelled class differ (pose, background, lighting) are shrunk,
  directions that tell classes apart are kept. The covariance is shrunk half-way towards
  its mean eigenvalue (``alpha`` = 1), the usual regularisation with few labels per class.
- :func:`midpoint_threshold` -- the average-linkage cut half-way between a typical
  class's spread (mean pairwise cosine distance) and a typical distance from a class to
  its nearest other class: the boundary equally far from "same class" and "look-alike
  class" as the labels show them.
- :func:`refine` -- k-means-like passes: every clustered image moves to the nearest
  centroid (labelled classes with their labelled images, and new clusters); fixes the
  boundary mistakes that bottom-up merging cannot undo.
- :func:`separation_ratio` -- how far apart, for their spreads, labelled classes are from
  their nearest other class (a low quantile): two large unnamed groups at least that far
  apart are two classes (the merge test of :func:`classifier.clustering.linkage.merge_groups`).
- :func:`attach_within_reach` -- a left-over image joins its nearest cluster when it is
  no farther from the centroid than the cluster's own farthest member.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.indexer.numerics import l2_normalize

Vectors = npt.NDArray[np.float32]


def class_sums(zl: Vectors, label_ids: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """Per-class sum vectors and counts of the labelled rows."""
    count = int(label_ids.max()) + 1 if len(label_ids) else 0
    sums = np.zeros((count, zl.shape[1]))
    np.add.at(sums, label_ids, zl)
    return sums, np.bincount(label_ids, minlength=count).astype(float)


def whiten_within(
    z: Vectors, zl: Vectors, label_ids: npt.NDArray, alpha: float = 1.0, min_classes: int = 5
) -> Vectors | None:
    """``z`` in the within-class-whitened metric, L2-normalised; None without enough labels.

    Needs ``min_classes`` classes of 2+ labelled images (the within-class scatter is the
    labelled images around their class means).
    """
    sums, size = class_sums(zl, label_ids)
    usable = size >= 2
    if usable.sum() < min_classes:
        return None
    keep = usable[label_ids]
    centred = zl[keep] - (sums / np.maximum(size, 1)[:, None])[label_ids[keep]]
    dof = max(int(keep.sum()) - int(usable.sum()), 1)
    scatter = centred.T.astype(np.float64) @ centred / dof
    d = scatter.shape[0]
    scatter += alpha * np.trace(scatter) / d * np.eye(d)
    w, v = np.linalg.eigh(scatter)
    transform = (v * w**-0.5) @ v.T
    return l2_normalize((z @ transform.astype(np.float32)).astype(np.float32))


def _class_geometry(zl: Vectors, label_ids: npt.NDArray):
    """(size, spread, between) of the labelled classes with 3+ images: each class's mean
    pairwise distance, and the mean distance between two classes (inf on the diagonal);
    None with fewer than 5 such classes."""
    sums, size = class_sums(zl, label_ids)
    ok = size >= 3
    if ok.sum() < 5:
        return None
    sums, size = sums[ok], size[ok]
    spread = 1.0 - (np.einsum("ij,ij->i", sums, sums) - size) / (size * (size - 1))
    between = 1.0 - (sums @ sums.T) / np.outer(size, size)
    np.fill_diagonal(between, np.inf)
    return size, spread, between


def midpoint_threshold(zl: Vectors, label_ids: npt.NDArray) -> tuple[float, float] | None:
    """(cut, median class spread): the cut half-way between the median spread of the
    labelled classes and the median distance of a class to its nearest other class.

    None with fewer than 5 classes of 3+ labelled images.
    """
    geometry = _class_geometry(zl, label_ids)
    if geometry is None:
        return None
    _size, spread, between = geometry
    within, nearest = float(np.median(spread)), float(np.median(between.min(1)))
    return (within + nearest) / 2, within


def separation_ratio(zl: Vectors, label_ids: npt.NDArray, quantile: float) -> float | None:
    """The ``quantile`` of the labelled classes' nearest-class separation: per class, the
    least mean distance to another class divided by the two classes' pooled spread.

    None with fewer than 5 classes of 3+ labelled images.
    """
    geometry = _class_geometry(zl, label_ids)
    if geometry is None:
        return None
    size, spread, between = geometry
    pairs = size * (size - 1) / 2
    pooled = (spread[:, None] * pairs[:, None] + spread[None, :] * pairs[None, :]) / (
        pairs[:, None] + pairs[None, :]
    )
    ratio = between / np.maximum(pooled, 1e-6)
    return float(np.quantile(ratio.min(1), quantile))


def _centres(zu, zl, label_ids, assign, n_classes):
    """(unit centroids, which rows are alive): classes with their labelled images."""
    held = assign >= 0
    count = max(int(assign.max()) + 1, n_classes)
    sums = np.zeros((count, zu.shape[1]))
    if len(label_ids):
        np.add.at(sums, label_ids, zl)
    np.add.at(sums, assign[held], zu[held])
    return l2_normalize(sums), np.linalg.norm(sums, axis=1) > 0


def attach_within_reach(
    zu: Vectors,
    zl: Vectors,
    label_ids: npt.NDArray,
    assign: npt.NDArray[np.int64],
    n_classes: int,
) -> npt.NDArray[np.int64]:
    """Noise rows (-1) join their nearest cluster when no farther from its centroid than
    its farthest member (labelled images included): inside what the cluster already
    spans, so no scale constant. Nothing N x N: a FAISS search of the centroids.
    """
    import faiss  # a native library: loaded when clustering runs, not on import

    out = assign.copy()
    noise = np.flatnonzero(out < 0)
    if not len(noise) or (out.max() < 0 and not len(label_ids)):
        return out
    centres, alive = _centres(zu, zl, label_ids, out, n_classes)
    reach = np.full(len(centres), -np.inf)
    held = np.flatnonzero(out >= 0)
    np.maximum.at(reach, out[held], 1.0 - np.einsum("ij,ij->i", zu[held], centres[out[held]]))
    if len(label_ids):
        np.maximum.at(reach, label_ids, 1.0 - np.einsum("ij,ij->i", zl, centres[label_ids]))
    live = np.flatnonzero(alive)
    index = faiss.IndexFlatIP(zu.shape[1])
    index.add(np.ascontiguousarray(centres[live]))
    sims, nearest = index.search(np.ascontiguousarray(zu[noise], dtype=np.float32), 1)
    target = live[nearest[:, 0]]
    ok = 1.0 - sims[:, 0] <= reach[target]
    out[noise[ok]] = target[ok]
    return out


def refine(
    zu: Vectors,
    zl: Vectors,
    label_ids: npt.NDArray,
    assign: npt.NDArray[np.int64],
    n_classes: int,
    min_size: int,
    passes: int = 3,
) -> npt.NDArray[np.int64]:
    """Move each clustered image to its nearest centroid, ``passes`` times.

    ``assign``: per unlabelled row a class id (< n_classes), a new cluster id or -1
    (noise, left alone). Class centroids include their labelled images. New clusters
    that fall under ``min_size`` become noise. Nothing N x N: a FAISS search of the
    centroids.
    """
    import faiss  # a native library: loaded when clustering runs, not on import

    out = assign.copy()
    held = out >= 0
    if not held.any():
        return out
    for _ in range(passes):
        centres, live = _centres(zu, zl, label_ids, out, n_classes)
        alive = np.flatnonzero(live)
        index = faiss.IndexFlatIP(zu.shape[1])
        index.add(np.ascontiguousarray(centres[alive]))
        _s, nearest = index.search(np.ascontiguousarray(zu[held], dtype=np.float32), 1)
        moved = alive[nearest[:, 0]]
        if (moved == out[held]).all():
            break
        out[held] = moved
    ids, counts = np.unique(out[out >= n_classes], return_counts=True)
    out[np.isin(out, ids[counts < min_size])] = -1
    return out
