"""A 2-D map of a library: every image a point, look-alikes close together.

How it is made (measured by ``scripts/bench_map.py``):

1. PCA of the vectors to ``PCA_DIM`` dimensions (fitted on a sample of at most
   ``FIT_SAMPLE`` vectors: enough for the directions of 1,280-d CNN features).
2. t-SNE (scikit-learn, Barnes-Hut) of at most ``LANDMARKS`` of them, the landmarks,
   chosen at random. t-SNE keeps neighbourhoods, which is what a person looking for
   groups wants of a map; its cost grows with the points, so it never sees more.
3. Every other image is placed at the similarity-weighted mean of its ``NEIGHBOURS``
   nearest landmarks (FAISS, in the PCA space): a few seconds at 100k images.

The map is incremental: ``extend`` keeps the place of every image it already has and
places new images among the same landmarks, so the map a person has learnt to read
does not reshuffle after each index run. It starts afresh (``project``) when the
landmarks are gone or new images outnumber those placed before (``needs_fresh``).
Coordinates are in [0, 1] on both axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from lookalike.indexer.numerics import l2_normalize

PCA_DIM = 50  # the usual t-SNE pre-step: removes noise, 25x less work per distance
FIT_SAMPLE = 20_000
LANDMARKS = 3_000  # t-SNE of 3,000 points, 500 iterations: about 5 s on 2 idle cores
NEIGHBOURS = 8
SHARPNESS = 20.0  # weights exp(SHARPNESS * cosine): the nearest landmarks dominate
MARGIN = 0.02  # of the map left empty on each side


@dataclass(frozen=True)
class Projection:
    """Map coordinates of a library's images, and what places new ones."""

    ids: npt.NDArray[np.int64]  # (n,) image ids, ascending
    xy: npt.NDArray[np.float32]  # (n, 2) in [0, 1]
    mean: npt.NDArray[np.float32]  # (dim,) PCA centre
    components: npt.NDArray[np.float32]  # (dim, PCA_DIM) PCA directions
    landmark_ids: npt.NDArray[np.int64]  # (m,) images that t-SNE placed
    landmark_xy: npt.NDArray[np.float32]  # (m, 2) their coordinates
    landmark_vectors: npt.NDArray[np.float32]  # (m, PCA_DIM) theirs in the PCA space, unit

    def coordinates(self, ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The (len(ids), 2) coordinates of ``ids``, which must all be on the map."""
        return self.xy[np.searchsorted(self.ids, np.asarray(ids, dtype=np.int64))]


def project(
    ids: npt.ArrayLike, vectors: np.ndarray, *, landmarks: int = LANDMARKS, seed: int = 0
) -> Projection:
    """A fresh map of ``vectors`` (one row per id; see the module docstring)."""
    order = np.argsort(np.asarray(ids, dtype=np.int64))
    ids_sorted = np.asarray(ids, dtype=np.int64)[order]
    x = np.asarray(vectors, dtype=np.float32)[order]
    rng = np.random.default_rng(seed)
    mean, components = _pca(x, rng)
    reduced = _reduce(x, mean, components)
    chosen = np.sort(rng.choice(len(x), size=min(landmarks, len(x)), replace=False))
    landmark_xy = _normalised(_tsne(reduced[chosen], seed))
    landmark_vectors = l2_normalize(reduced[chosen])
    xy = _place(landmark_vectors, landmark_xy, reduced)
    xy[chosen] = landmark_xy
    return Projection(
        ids_sorted, xy, mean, components, ids_sorted[chosen], landmark_xy, landmark_vectors
    )


def extend(previous: Projection, ids: npt.ArrayLike, vectors: np.ndarray) -> Projection:
    """The map of ``ids``: the places of ``previous`` kept, new images placed among
    its landmarks, images no longer in ``ids`` dropped."""
    order = np.argsort(np.asarray(ids, dtype=np.int64))
    ids_sorted = np.asarray(ids, dtype=np.int64)[order]
    x = np.asarray(vectors, dtype=np.float32)[order]
    known = np.isin(ids_sorted, previous.ids)
    xy = np.zeros((len(ids_sorted), 2), np.float32)
    xy[known] = previous.coordinates(ids_sorted[known])
    if (~known).any():
        reduced = _reduce(x[~known], previous.mean, previous.components)
        xy[~known] = _place(previous.landmark_vectors, previous.landmark_xy, reduced)
    keep = np.isin(previous.landmark_ids, ids_sorted)
    return Projection(
        ids_sorted,
        xy,
        previous.mean,
        previous.components,
        previous.landmark_ids[keep],
        previous.landmark_xy[keep],
        previous.landmark_vectors[keep],
    )


def needs_fresh(previous: Projection, ids: npt.ArrayLike) -> bool:
    """True when ``extend`` would place more new images than the map holds, or when
    too few landmarks are left to place them."""
    current = np.asarray(ids, dtype=np.int64)
    new = int((~np.isin(current, previous.ids)).sum())
    landmarks_left = int(np.isin(previous.landmark_ids, current).sum())
    return new > len(previous.ids) or landmarks_left < min(NEIGHBOURS, len(current))


def _pca(
    x: np.ndarray, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The PCA centre and top directions, from the eigenvectors of the covariance
    (a d x d problem: ~10x faster than an SVD of the n x d sample). The covariance is
    summed in float32 (a float64 product of the 20,000 x 1,280 sample took 6 of the
    14 s of this step at 100k images), its eigenvectors found in float64."""
    sample = x if len(x) <= FIT_SAMPLE else x[rng.choice(len(x), FIT_SAMPLE, replace=False)]
    mean = sample.mean(axis=0, dtype=np.float64)
    centred = np.ascontiguousarray(sample - mean.astype(np.float32), dtype=np.float32)
    _, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    dims = min(PCA_DIM, vectors.shape[1])
    return mean.astype(np.float32), np.ascontiguousarray(vectors[:, ::-1][:, :dims], np.float32)


def _reduce(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((x - mean) @ components, dtype=np.float32)


def _tsne(points: np.ndarray, seed: int) -> np.ndarray:
    if len(points) < 5:  # t-SNE needs more points than its neighbourhood
        return points[:, :2] if points.shape[1] >= 2 else np.zeros((len(points), 2))
    from sklearn.manifold import TSNE  # scikit-learn's import takes ~1 s: only when mapping

    perplexity = min(30.0, (len(points) - 1) / 3)
    tsne = TSNE(init="pca", perplexity=perplexity, random_state=seed, max_iter=500)
    return tsne.fit_transform(points)


def _normalised(xy: np.ndarray) -> npt.NDArray[np.float32]:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max((hi - lo).max(), 1e-9))
    centred = (xy - lo) / span + (1 - (hi - lo) / span) / 2  # keep the aspect ratio
    return (MARGIN + (1 - 2 * MARGIN) * centred).astype(np.float32)


def _place(
    landmark_vectors: np.ndarray, landmark_xy: np.ndarray, reduced: np.ndarray
) -> npt.NDArray[np.float32]:
    """Coordinates of PCA-space points among the landmarks."""
    if len(reduced) == 0:
        return np.zeros((0, 2), np.float32)
    index = faiss.IndexFlatIP(landmark_vectors.shape[1])
    index.add(np.ascontiguousarray(landmark_vectors, dtype=np.float32))
    k = min(NEIGHBOURS, len(landmark_vectors))
    sims, nearest = index.search(l2_normalize(reduced), k)
    weights = np.exp(SHARPNESS * (sims - sims[:, :1]))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, landmark_xy[nearest]).astype(np.float32)
