"""The FAISS index of a library: ids are catalog ids, scores are cosine similarities.

The index is a derived artefact: every vector also lives in the catalog, so the
index can always be rebuilt. It is written aside and renamed into place, so a
reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexer.embedder import FeatureVector

FLAT = "flat"


def _faiss():
    import faiss

    return faiss


class VectorIndex:
    """A FAISS index over L2-normalised vectors, keyed by catalog id."""

    def __init__(self, index, kind: str = FLAT) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def empty(cls, dim: int, kind: str = FLAT) -> VectorIndex:
        faiss = _faiss()
        if kind != FLAT:
            raise ValueError(f"unknown index kind {kind!r}")
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), kind)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: FeatureVector, kind: str = FLAT) -> VectorIndex:
        index = cls.empty(vectors.shape[1] if len(vectors) else 0, kind)
        index.add(ids, vectors)
        return index

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        faiss = _faiss()
        index = faiss.read_index(str(path))
        return cls(index, kind_of(index))

    def save(self, path: str | Path) -> None:
        """Write the index atomically: a reader sees the old file or the new one."""
        faiss = _faiss()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, ids: np.ndarray, vectors: FeatureVector) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0 or self.ntotal == 0:
            return 0
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def ids(self) -> np.ndarray:
        """All ids in the index (for consistency checks)."""
        faiss = _faiss()
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, queries: FeatureVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for each query row; missing neighbours have id -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        if self.ntotal == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        return self.index.search(queries, k)


def kind_of(index) -> str:
    return FLAT
