"""What a long-lived reader searches while a writer indexes: the file plus an overlay.

A server (or any Searcher kept open) must see what an indexing run commits, without
a restart. Loading the index file again after each commit (every few seconds during
a run) would read the whole file each time: 1.2 GB at 1M images. Instead the file's
index stays loaded until its generation changes, and the ids committed since it was
written (the catalog's pending ids: added, changed or removed) are searched in a
small exact overlay of their current vectors, while their stale entries in the file's
index are hidden. A search asks the file's index for k plus the number of hidden ids
it holds, drops those, and merges the overlay's top k: the same answer as an index
rebuilt with the changes (:meth:`lookalike.indexer.store.library.Library.live_index`), which the
reader falls back to when too many entries are hidden for that to stay cheap.
"""

from __future__ import annotations

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.ivf_index import IvfIndex
from lookalike.indexer.store.vector_index import VectorIndex, top_k

# Above this many stale entries in the file's index (changed or removed images), a
# reader rebuilds its index in memory instead (each search would fetch that many more).
MAX_HIDDEN = 256


class LiveIndex:
    """``base`` without its ``hidden`` ids, plus ``overlay`` (exact, the pending vectors)."""

    def __init__(self, base: VectorIndex, overlay: VectorIndex, hidden: np.ndarray) -> None:
        self.base = base
        self.overlay = overlay
        self.hidden = np.asarray(hidden, dtype=np.int64)
        self.kind = base.kind

    @property
    def dim(self) -> int:
        return self.base.dim or self.overlay.dim

    @property
    def ntotal(self) -> int:
        return self.base.ntotal - len(self.hidden) + self.overlay.ntotal

    def describe(self) -> str:
        return f"{self.base.describe()} + {self.overlay.ntotal} committed since"

    def search(
        self, queries: FeatureVector, k: int, rerank: int | None = None, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for each query row, as :meth:`VectorIndex.search`."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        scores, ids = self.base.search(queries, k + len(self.hidden), rerank, nprobe)
        if isinstance(self.base, IvfIndex) and self.base.source is not None and self.overlay.ntotal:
            # The IVF is exact only near its own k-th place, which is not the merged
            # one: score all its candidates exactly to compare them with the overlay's.
            scores = self.base.exact_scores(queries, ids)
        if len(self.hidden):
            stale = np.isin(ids, self.hidden)
            scores, ids = np.where(stale, -np.inf, scores), np.where(stale, -1, ids)
        more_scores, more_ids = self.overlay.search(queries, k)
        scores = np.concatenate([scores, more_scores], axis=1)
        ids = np.concatenate([ids, more_ids], axis=1)
        scores = np.where(ids < 0, -np.inf, scores)
        return top_k(scores, ids, k)


def live_view(
    base: VectorIndex, base_ids: np.ndarray, pending: list[int], catalog
) -> LiveIndex | None:
    """``base`` (whose ids, sorted, are ``base_ids``) with the ``pending`` ids' current
    catalog vectors; None when too many of its entries would be hidden."""
    pending_ids = np.array(pending, dtype=np.int64)
    hidden = pending_ids[np.isin(pending_ids, base_ids, assume_unique=True)]
    if len(hidden) > MAX_HIDDEN:
        return None
    present, vectors = catalog.vectors(pending, dim=base.dim)
    dim = base.dim or (vectors.shape[1] if len(vectors) else 0)
    overlay = VectorIndex.empty(dim)
    overlay.add(present, vectors)
    return LiveIndex(base, overlay, hidden)
