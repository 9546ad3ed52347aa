"""A vector index of the right kind: chosen by size when one is made, told by its file
when one is read.

The kinds are ``flat`` (exact search, lookalike.indexer.store.vector_index.VectorIndex)
and ``ivf`` (SQ8 candidates re-scored exactly, lookalike.indexer.store.ivf_index);
vector_index.py says when each is chosen and why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.indexer.store.ivf_index import IvfIndex, KeptVectors
from lookalike.indexer.store.vector_index import (
    FLAT,
    IVF,
    IVF_MAGIC,
    IvfParams,
    VectorIndex,
    VectorSource,
    choose_kind,
)


def train_index(sample: FeatureVector, n: int, kind: str | None = None) -> VectorIndex:
    """An empty index of the kind for ``n`` vectors, trained on ``sample`` if needed.

    An IVF index returned here has no exact-vector source yet: attach the catalog
    with :meth:`IvfIndex.attach` (the library does) to search with exact scores.
    """
    kind = kind or choose_kind(n)
    if kind == FLAT:
        return VectorIndex.empty(sample.shape[1])
    if kind == IVF:
        return IvfIndex.train_new(sample, IvfParams.for_size(n, sample.shape[1]))
    raise ValueError(f"unknown index kind {kind!r}")


def build_index(ids: np.ndarray, vectors: FeatureVector, kind: str | None = None) -> VectorIndex:
    """An index over ``vectors`` (the kind follows their number unless given).

    An IVF index built here keeps its exact vectors in memory (:class:`KeptVectors`).
    """
    kind = kind or choose_kind(len(vectors))
    index: VectorIndex
    if kind == FLAT:
        index = VectorIndex.empty(vectors.shape[1] if len(vectors) else 0)
    else:
        sample = vectors
        params = IvfParams.for_size(len(vectors), vectors.shape[1])
        if params.train_size(len(vectors)) < len(vectors):
            rng = np.random.default_rng(0)
            take = rng.choice(len(vectors), params.train_size(len(vectors)), replace=False)
            sample = vectors[np.sort(take)]
        index = IvfIndex.train_new(sample, params)
        index.attach(KeptVectors())
    index.add(ids, vectors)
    return index


def read_index(path: str | Path, source: VectorSource | None = None) -> VectorIndex:
    """Read an index file of either kind; an IVF index re-scores with ``source`` (the
    catalog, or the library's float16 copy of its vectors)."""
    with open(path, "rb") as f:
        if f.read(len(IVF_MAGIC)) == IVF_MAGIC:
            index = IvfIndex.read(f)
            if source is not None:
                index.attach(source)
            return index
    return VectorIndex(load_faiss().read_index(str(path)), FLAT)
