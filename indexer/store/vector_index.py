"""The FAISS index of a library: ids are catalog ids, scores are cosine similarities.

The index is a derived artefact: every vector also lives in the catalog, so the
index can always be rebuilt. It is written aside and renamed into place, so a
reader never sees half a file.

Two kinds, chosen by library size (:func:`choose_kind`; indexer/store/index_kinds.py
makes and reads an index of either kind):

- ``flat``: exact inner-product search (``IndexIDMap2(IndexFlatIP)``), a plain FAISS
  file. Up to FLAT_MAX vectors.
- ``ivf``: an inverted file of 8-bit scalar-quantised vectors (one byte a dimension:
  1.2 GB at 1M x 1280; one uniform range for all dimensions, without residuals: 1.6x
  faster to scan than FAISS's per-dimension ``SQ8`` at the same candidate recall). SQ8
  scores are within ~1e-3 of the exact ones: close enough to put the true top 10 among
  the top 20, not to order near-ties at the k-th place. So the candidates within
  RERANK_MARGIN of the k-th SQ8 score are re-scored with their exact vectors, read
  from the library's float16 copy of them (indexer/store/exact_vectors.py) or the catalog
  (any object with a ``vectors(ids)`` method, see :class:`VectorSource`); the others
  keep their SQ8 score. Without a source the SQ8 scores are returned (an index built in memory
  keeps its own vectors: :class:`lookalike.indexer.store.ivf_index.KeptVectors`). The IVF stores
  catalog ids, so ``remove``/``add`` by id work without a rebuild. The file is a small
  container: :data:`IVF_MAGIC`, a JSON header (:class:`IvfParams`), the FAISS index.

Measured at 1M x 1280 here (scripts/bench_search.py, vectors mixed from real
embeddings, 2 cores): exact search 198 ms a query in 4.9 GB; this index 0.73 ms p50
(0.47 ms of SQ8 search, the rest ~10 float16 rows re-scored; 0.86 ms when they came
from the catalog), recall@10 0.973, 1,251 MB once loaded. A duplicates pass over the
million took 331 s (12 minutes with the per-dimension SQ8 and catalog reads). 4-bit
PQ fast-scan codes (IVF1024,PQ320x4fs, 176 MB, 0.25 ms) put only 62% of the true
top 10 among their top 50 candidates (97% among 200): in a library that dense,
neighbours are ~0.001 apart and PQ errors are ~0.01, so re-ranking them would need
hundreds of exact reads a query. HNSW (~5.4 GB) cannot remove ids. IVF-SQ8 scanning
2 of 1024 lists (~2,000 vectors, ~0.5 ms) holds 98% of the true top 10 in its top 20.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.faiss_loader import load_faiss

FLAT = "flat"
IVF = "ivf"
KINDS = (FLAT, IVF)

# Library sizes where the kind changes. Exact search costs 0.2-0.6 us per vector and
# query here (memory-bandwidth bound; 13 ms at 20k and 93 ms at 150k measured on this
# loaded machine), so up to FLAT_MAX it answers in 10-30 ms with perfect recall and no
# training. Past it the IVF index answers in ~1 ms (recall@10 0.998 at 150k, 0.974 at
# 1M) in a quarter of the memory, and whole-library passes (duplicates, tagging), which
# cost n^2 with exact search (3 TFLOP at 50k), stay linear. The gap down to FLAT_BACK
# keeps a library hovering around the limit from rebuilding at every sync.
FLAT_MAX = 50_000
FLAT_BACK = 25_000
# Retrain the IVF (new centroids, new number of lists) when the library has grown or
# shrunk by this factor since training: its lists then hold 4x more (or fewer) vectors
# than planned, and latency or recall drift from what was measured.
RETRAIN_GROWTH = 4.0
# k-means wants ~40+ points per centroid; more costs training time for little gain.
TRAIN_PER_LIST = 48
TRAIN_MAX = 65_536
# Vectors scanned per query (nprobe x list size): at 1M, 2 lists of ~1,000 put 98% of
# the true top 10 among the top 20 candidates in ~0.7 ms; 3 lists gave 98.3% in 1.0 ms.
SCAN_TARGET = 2_000
# SQ8 candidates considered (at least 2k). At 1M the top 20 held as many of the true
# top 10 as the top 50 did (98%).
RERANK = 20
# Candidates whose SQ8 score is within this of the k-th one are re-scored exactly: the
# uniform SQ8 scores are off by 5.5e-4 (std) here, and neighbours at 1M sit ~1e-3
# apart. At 1M a margin of 1e-3 gave recall@10 0.968 with ~5 exact reads a query,
# 1.5e-3 0.972, 2e-3 0.973 (~0.06 ms more), and re-scoring all 20 no more. A read is a
# float16 row of vectors.f16 (~6 us from the page cache, a disk read when not).
RERANK_MARGIN = 2e-3

SQ8 = "sq8"
SQ8_UNIFORM = "sq8u"

IVF_MAGIC = b"LOOKALIKE-IVF\x00"


class VectorSource(Protocol):
    """Where the IVF kind reads exact vectors: the catalog, or :class:`KeptVectors`."""

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, FeatureVector]:
        """(ids found, their vectors), in any order; unknown ids are left out."""
        ...


def choose_kind(n: int, current: str | None = None) -> str:
    """The index kind for a library of ``n`` vectors (with hysteresis around the limit)."""
    if n > FLAT_MAX:
        return IVF
    if current == IVF and n >= FLAT_BACK:
        return IVF
    return FLAT


@dataclass(frozen=True)
class IvfParams:
    """How an IVF index was built and is searched."""

    nlist: int  # inverted lists (k-means centroids)
    nprobe: int  # lists scanned per query
    rerank: int  # SQ8 candidates re-scored with exact vectors
    trained_n: int  # library size when trained (retrain past RETRAIN_GROWTH x this)
    # "sq8u": one 8-bit range for every dimension, no residuals (1.6x faster scans than
    # "sq8", per-dimension ranges on residuals, at the same candidate recall; files
    # written before it keep "sq8").
    quantizer: str = SQ8_UNIFORM

    @classmethod
    def for_size(cls, n: int, dim: int) -> IvfParams:
        # ~sqrt(n) lists of ~sqrt(n) vectors: coarse assignment and list scans cost alike.
        nlist = int(2 ** round(math.log2(max(64.0, math.sqrt(max(n, 1))))))
        nprobe = int(min(nlist, max(2, round(SCAN_TARGET * nlist / max(n, 1)))))
        return cls(nlist=nlist, nprobe=nprobe, rerank=RERANK, trained_n=n)

    @classmethod
    def from_json(cls, text: str | bytes) -> IvfParams:
        fields = json.loads(text)
        known = {k: fields[k] for k in ("nlist", "nprobe", "rerank", "trained_n")}
        return cls(**known, quantizer=fields.get("quantizer", SQ8))

    def train_size(self, n: int) -> int:
        return min(n, max(self.nlist * TRAIN_PER_LIST, 10_000), TRAIN_MAX)


class VectorIndex:
    """A FAISS index over L2-normalised vectors, keyed by catalog id (exact: ``flat``)."""

    def __init__(self, index, kind: str = FLAT) -> None:
        self.index = index
        self.kind = kind

    # -- construction --------------------------------------------------------------
    @classmethod
    def empty(cls, dim: int, kind: str = FLAT) -> VectorIndex:
        """An empty exact index (an IVF index needs training: see index_kinds.train_index)."""
        if kind != FLAT:
            raise ValueError(f"an empty {kind!r} index needs training data; use train()")
        faiss = load_faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), FLAT)

    def save(self, path: str | Path, wrap: Callable[[BinaryIO], Any] | None = None) -> None:
        """Write the index atomically: a reader sees the old file or the new one.

        ``wrap``: gives the object written through (its ``write``) for the open file,
        e.g. one that checksums what is written (indexer/store/index_file.py).
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                self._write(wrap(f) if wrap is not None else f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _write(self, f) -> None:
        faiss = load_faiss()
        faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write))

    def attach(self, source: VectorSource | None) -> None:
        """Where to read exact vectors for re-scoring (the exact kind holds its own)."""

    # -- facts -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def describe(self) -> str:
        """A short name of the structure, e.g. ``flat`` or ``ivf1024-sq8 (...)``."""
        return self.kind

    def memory_bytes(self) -> int:
        """Approximate resident size of the index structures."""
        return self.ntotal * (self.dim * 4 + 8 + 40)  # vectors, id map, reverse map

    def needs_rebuild(self, n: int) -> bool:
        """True when a library of ``n`` vectors wants another kind or a retrained index."""
        return choose_kind(n, self.kind) != self.kind

    # -- changes -----------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: FeatureVector) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0 or self.ntotal == 0:
            return 0
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    # -- reading -----------------------------------------------------------------
    def ids(self) -> np.ndarray:
        """All ids in the index (for consistency checks)."""
        return load_faiss().vector_to_array(self.index.id_map).astype(np.int64)

    def reconstruct(self, ids: np.ndarray) -> FeatureVector:
        """The exact vectors of ``ids`` (all must be in the index)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, FeatureVector]]:
        """Every (ids, exact vectors) in the index, ``batch`` at a time."""
        ids = self.ids()
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            yield chunk, self.reconstruct(chunk)

    def search(
        self, queries: FeatureVector, k: int, rerank: int | None = None, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for each query row; missing neighbours have id -1.

        IVF only: ``rerank`` overrides how many candidates are re-scored exactly (0: none,
        the SQ8 scores), ``nprobe`` how many lists are scanned.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.ntotal == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        return self._search(queries, max(1, min(k, self.ntotal)), rerank, nprobe)

    def _search(self, queries: FeatureVector, k: int, rerank: int | None, nprobe: int | None):
        return self.index.search(queries, k)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, ids) of each row, best first (stable on ties); id -1 where the
    score is not finite (-inf marks a dropped candidate)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_scores = np.take_along_axis(scores, top, 1).astype(np.float32)
    top_ids = np.take_along_axis(ids, top, 1)
    top_ids[~np.isfinite(top_scores)] = -1
    return top_scores, top_ids


def kind_of(index: VectorIndex) -> str:
    return index.kind
