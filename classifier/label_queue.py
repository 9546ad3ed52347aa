"""The label-next queue: the unlabelled images whose human label teaches the tagger most.

Each unlabelled image gets a value, the product of

* **density**: how many images lie close to it (the mean cosine similarity to its
  nearest neighbours): a label there spreads to many images;
* **need**: how little the tagger knows there: one minus the confidence of its
  predicted tag (an "unknown" answer, or no tag run yet, counts as knowing
  nothing), plus how far it lies from every labelled image (an under-covered
  region, or a class nobody labelled yet).

The queue is taken greedily, best first; after each pick the picked image's
neighbours lose most of their value, so a batch covers different regions rather
than twenty near-copies of one uncertain group. Pure compute on vectors
(:func:`rank`), and over a library with its last tag run's tags and the
tagger's suggestions (:func:`next_images`; in a library of more than ``MAX_ROWS``
unlabelled images, over a fixed random sample of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.classifier.neighbours import knn
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.indexer.store.library import Library

NEIGHBOURS = 10
NEAR_PICK_KEEPS = 0.2  # the value a picked image's neighbours keep
SUGGESTIONS = 3
EXACT_MAX = 2000  # rows up to which the neighbour graph is exact
MAX_ROWS = 50_000  # labelled, and unlabelled, rows a queue looks at (a random sample past it)


def normalised(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def neighbours(x: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, rows) of each row's ``k`` nearest other rows (cosine; exact up to
    EXACT_MAX rows, an inverted file beyond: lookalike.classifier.neighbours)."""
    k = min(k, len(x) - 1)
    if k < 1:
        return np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64)
    sims, rows = knn(x, k + 1, exact_max=EXACT_MAX)
    own = rows == np.arange(len(x))[:, None]
    # Drop each row itself (usually the first column), else the farthest one found.
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(len(x)), drop] = False
    sims, rows = sims[keep].reshape(len(x), k), rows[keep].reshape(len(x), k)
    return np.where(rows >= 0, sims, 0.0), np.where(rows >= 0, rows, 0)


def rank(
    vectors: np.ndarray,
    labelled: np.ndarray,
    confidence: np.ndarray | None,
    n: int,
    graph: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[int]:
    """The ``n`` rows of ``vectors`` most worth labelling next, best first.

    Args:
        vectors: one row per image.
        labelled: row numbers that have a human label (never in the queue).
        confidence: per row, the confidence of its predicted *label* (0 for an
            "unknown" answer or no tag); None: no tag run yet.
        n: how many rows to return.
        graph: precomputed :func:`neighbours` of the normalised vectors.
    """
    x = normalised(vectors)
    sims, rows = graph if graph is not None else neighbours(x)
    density = np.clip(sims.mean(axis=1), 0.0, 1.0) if sims.shape[1] else np.ones(len(x))
    known = np.zeros(len(x), dtype=np.float32) if confidence is None else confidence
    need = (1.0 - np.clip(known, 0.0, 1.0)) + _distance_to(x, labelled)
    value = density * need
    value[np.asarray(labelled, dtype=np.int64)] = -np.inf
    picked: list[int] = []
    for _ in range(min(n, len(x) - len(labelled))):
        best = int(np.argmax(value))
        if not np.isfinite(value[best]):
            break
        picked.append(best)
        value[best] = -np.inf
        near = rows[best][sims[best] > 0]
        value[near] *= NEAR_PICK_KEEPS
    return picked


def _distance_to(x: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Per row, one minus its cosine similarity to the nearest labelled row (1: none)."""
    if len(labelled) == 0:
        return np.ones(len(x), dtype=np.float32)
    faiss = load_faiss()
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x[np.asarray(labelled, dtype=np.int64)])
    sims, _ = index.search(x, 1)
    return np.clip(1.0 - sims[:, 0], 0.0, 1.0)


@dataclass(frozen=True)
class QueueItem:
    id: int
    path: str
    suggestions: list[tuple[str, float]]  # (label, confidence), best first
    # the labels of its nearest labelled images (of 20), each with its best cosine
    # similarity, nearest first: one measure for every label (the web's suggestions)
    near: tuple[tuple[str, float], ...] = ()

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "path": self.path,
            "suggestions": [
                {"label": label, "confidence": round(c, 4)} for label, c in self.suggestions
            ],
        }


@dataclass(frozen=True)
class Queue:
    items: list[QueueItem]

    def as_json(self) -> list[dict]:
        return [item.as_json() for item in self.items]


def next_images(library: Library, n: int = 10) -> Queue:
    """The library's ``n`` unlabelled images most worth labelling, with suggestions.

    The suggestions are the last tag run's tag of the image (its confidence), then
    the labels of its nearest labelled images (their cosine similarity).
    """
    cat = library.catalog
    ids, vectors = cat.vectors()
    if len(ids) == 0:
        return Queue([])
    labels = cat.labels()
    ids, vectors = _sample(ids, vectors, set(labels))
    row_of = {int(i): r for r, i in enumerate(ids)}
    labelled = np.array([row_of[i] for i in labels if i in row_of], dtype=np.int64)
    tags = cat.tag_rows_of([int(i) for i in ids])
    confidence = None
    if tags:
        confidence = np.zeros(len(ids), dtype=np.float32)
        for i, tag in tags.items():
            if tag["label"] is not None and i in row_of:
                confidence[row_of[i]] = tag["confidence"]
    x = normalised(vectors)
    rows = rank(x, labelled, confidence, n, graph=_graph(library, ids, x))
    picked = [int(ids[r]) for r in rows]
    paths = cat.paths(picked)
    near = _nearest_labels(x, ids, labelled, labels, rows)
    items = []
    for r, image_id in zip(rows, picked, strict=True):
        own = tags.get(image_id)
        first = [(own["label"], float(own["confidence"]))] if own and own["label"] else []
        close = near.get(r, [])
        items.append(QueueItem(image_id, paths[image_id], _merged(first, close), tuple(close)))
    return Queue(items)


_graphs: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _graph(library: Library, ids: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour graph of the library's rows, kept while its images do not change
    (a page asks for the queue again after every few labels; the graph costs seconds)."""
    key = (str(library.root), library.catalog.content_version(), ids.tobytes())
    if key not in _graphs:
        _graphs.clear()  # one library's graph at a time
        _graphs[key] = neighbours(x)
    return _graphs[key]


def _sample(
    ids: np.ndarray, vectors: np.ndarray, labelled: set[int]
) -> tuple[np.ndarray, np.ndarray]:
    """All rows, or past MAX_ROWS a fixed random sample of MAX_ROWS labelled and as many
    unlabelled rows (bounds the time and memory of one queue)."""
    if len(ids) <= MAX_ROWS:
        return ids, vectors
    rng = np.random.default_rng(0)
    is_labelled = np.isin(ids, np.fromiter(labelled, dtype=np.int64, count=len(labelled)))
    parts = []
    for rows in (np.flatnonzero(is_labelled), np.flatnonzero(~is_labelled)):
        parts.append(rng.choice(rows, min(len(rows), MAX_ROWS), replace=False))
    keep = np.sort(np.concatenate(parts))
    return ids[keep], vectors[keep]


def _nearest_labels(
    x: np.ndarray, ids: np.ndarray, labelled: np.ndarray, labels: dict[int, str], rows: list[int]
) -> dict[int, list[tuple[str, float]]]:
    """Per queue row: the labels of its nearest labelled images, with their similarity."""
    if len(labelled) == 0 or not rows:
        return {}
    faiss = load_faiss()
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x[labelled])
    sims, found = index.search(x[np.asarray(rows)], min(20, len(labelled)))
    out: dict[int, list[tuple[str, float]]] = {}
    for r, s_row, f_row in zip(rows, sims, found, strict=True):
        seen: dict[str, float] = {}
        for s, f in zip(s_row, f_row, strict=True):
            if f >= 0:
                name = labels[int(ids[labelled[f]])]
                seen.setdefault(name, max(0.0, float(s)))
        out[r] = list(seen.items())
    return out


def _merged(first: list[tuple[str, float]], rest: list[tuple[str, float]]) -> list:
    out = list(first)
    for name, score in rest:
        if len(out) >= SUGGESTIONS:
            break
        if all(name != have for have, _ in out):
            out.append((name, score))
    return out
