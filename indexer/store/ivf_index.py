"""The ``ivf`` kind of vector index: SQ8 inverted-file candidates re-scored exactly.

See indexer/store/vector_index.py for when it is chosen and why. The FAISS part is
``IVF<nlist>,SQ8`` over inner products, holding catalog ids; the exact vectors
come from a :class:`~lookalike.indexer.store.vector_index.VectorSource` -- the catalog in a library,
or :class:`KeptVectors` for an index built in memory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import asdict

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.indexer.store.vector_index import (
    IVF,
    IVF_MAGIC,
    RERANK_MARGIN,
    RETRAIN_GROWTH,
    SQ8,
    SQ8_UNIFORM,
    IvfParams,
    VectorIndex,
    VectorSource,
    choose_kind,
    top_k,
)

# The container's JSON header is ~100 bytes; a length past this is not one.
MAX_HEADER = 64 * 1024
# Re-scoring gathers (queries x candidates x dim) floats: bound that to ~64 MB.
RESCORE_FLOATS = 16 * 2**20


class KeptVectors:
    """Exact vectors held in memory by id, for IVF indexes built without a catalog."""

    def __init__(self) -> None:
        self._rows: dict[int, np.ndarray] = {}

    def add(self, ids: np.ndarray, vectors: FeatureVector) -> None:
        for i, v in zip(ids.tolist(), vectors, strict=True):
            self._rows[i] = np.array(v, dtype=np.float32)

    def remove(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            self._rows.pop(i, None)

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, FeatureVector]:
        found = [int(i) for i in ids if int(i) in self._rows]
        if not found:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array(found, np.int64), np.stack([self._rows[i] for i in found])


class IvfIndex(VectorIndex):
    """IVF-SQ8 candidates, re-scored exactly (see the module docstring)."""

    def __init__(self, ivf, params: IvfParams, source: VectorSource | None = None) -> None:
        super().__init__(ivf, IVF)
        self.params = params
        self.source = source
        load_faiss().extract_index_ivf(ivf).nprobe = params.nprobe
        self._search_params: dict[int, object] = {}

    def attach(self, source: VectorSource | None) -> None:
        """Re-score candidates with exact vectors from ``source`` (None: SQ8 scores)."""
        self.source = source

    @classmethod
    def train_new(cls, sample: FeatureVector, params: IvfParams) -> IvfIndex:
        faiss = load_faiss()
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        dim = sample.shape[1]
        if params.quantizer == SQ8:
            ivf = faiss.index_factory(dim, f"IVF{params.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        elif params.quantizer == SQ8_UNIFORM:
            coarse = faiss.IndexFlatIP(dim)
            uniform = faiss.ScalarQuantizer.QT_8bit_uniform
            ivf = faiss.IndexIVFScalarQuantizer(
                coarse, dim, params.nlist, uniform, faiss.METRIC_INNER_PRODUCT, False
            )
            ivf.own_fields = True  # the IVF frees its coarse quantizer
            coarse.this.disown()
        else:
            raise ValueError(f"unknown IVF quantizer {params.quantizer!r}")
        ivf.train(sample)
        return cls(ivf, params)

    @classmethod
    def read(cls, f) -> IvfIndex:
        """Read the container after its magic: header length, JSON params, FAISS index."""
        faiss = load_faiss()
        (size,) = struct.unpack("<Q", f.read(8))
        if size > MAX_HEADER:  # not a header this code wrote: do not read gigabytes
            raise ValueError(f"an IVF header of {size} bytes")
        params = IvfParams.from_json(f.read(size))
        ivf = faiss.read_index(faiss.PyCallbackIOReader(f.read))
        return cls(ivf, params)

    def _write(self, f) -> None:
        faiss = load_faiss()
        header = json.dumps(asdict(self.params)).encode()
        f.write(IVF_MAGIC + struct.pack("<Q", len(header)) + header)
        faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write))

    # -- facts -------------------------------------------------------------------
    def describe(self) -> str:
        p = self.params
        return (
            f"ivf{p.nlist}-{p.quantizer} (nprobe {p.nprobe}, top {p.rerank}, exact near the k-th)"
        )

    def memory_bytes(self) -> int:
        # SQ8 codes (one byte a dimension) and ids in the lists, and the centroids.
        return self.ntotal * (self.dim + 8) + self.params.nlist * self.dim * 4

    def needs_rebuild(self, n: int) -> bool:
        if choose_kind(n, IVF) != IVF:
            return True
        trained = max(self.params.trained_n, 1)
        return n >= trained * RETRAIN_GROWTH or n * RETRAIN_GROWTH <= trained

    # -- changes -----------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: FeatureVector) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add_with_ids(vectors, ids)
        if isinstance(self.source, KeptVectors):
            self.source.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0 or self.ntotal == 0:
            return 0
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        # A full pass over the lists (~50 ms at 1M): fine once per sync.
        removed = int(self.index.remove_ids(load_faiss().IDSelectorBatch(ids)))
        if isinstance(self.source, KeptVectors):
            self.source.remove(ids)
        return removed

    # -- reading -----------------------------------------------------------------
    def ids(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.int64), *self._list_ids()])

    def _list_ids(self) -> Iterator[np.ndarray]:
        faiss = load_faiss()
        invlists = faiss.extract_index_ivf(self.index).invlists
        for list_no in range(invlists.nlist):
            size = invlists.list_size(list_no)
            if size:
                ptr = invlists.get_ids(list_no)
                yield faiss.rev_swig_ptr(ptr, size).astype(np.int64)
                invlists.release_ids(list_no, ptr)

    def reconstruct(self, ids: np.ndarray) -> FeatureVector:
        """Exact vectors of ``ids`` from the source, in the order asked."""
        found, vectors = self._exact(np.asarray(ids, dtype=np.int64))
        if not found.all():
            raise KeyError(f"{int((~found).sum())} ids have no vector in the source")
        return vectors

    def exact_scores(self, queries: FeatureVector, ids: np.ndarray) -> np.ndarray:
        """Exact scores of ``ids`` (one row of ids per query) from the source; -inf for
        -1 and for ids without a vector."""
        found, vectors = self._exact(np.asarray(ids, dtype=np.int64).ravel())
        scores = np.einsum("nd,nmd->nm", queries, vectors.reshape(*ids.shape, self.dim))
        return np.where(found.reshape(ids.shape) & (ids >= 0), scores, -np.inf)

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, FeatureVector]]:
        """Every (ids, exact vectors) by increasing id; ids gone from the source are skipped.

        Id order reads the catalog sequentially: list order made each row a random read,
        which on a 5 GB catalog that the page cache does not hold is a disk seek.
        """
        ids = np.sort(self.ids())
        for start in range(0, len(ids), batch):
            yield self._batch(ids[start : start + batch])

    def _batch(self, ids: np.ndarray) -> tuple[np.ndarray, FeatureVector]:
        found, vectors = self._exact(ids)
        return ids[found], vectors[found]

    def _exact(self, ids: np.ndarray) -> tuple[np.ndarray, FeatureVector]:
        """(found mask, vectors aligned with ``ids``; zeros where not found)."""
        if self.source is None:
            raise RuntimeError("this IVF index has no source of exact vectors; attach() one")
        wanted = ids.tolist()
        got_ids, got = self.source.vectors(sorted({i for i in wanted if i >= 0}))
        row = {i: r for r, i in enumerate(np.asarray(got_ids).tolist())}
        where = np.array([row.get(i, -1) for i in wanted], dtype=np.int64)
        found = where >= 0
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if found.any():
            out[found] = np.asarray(got, dtype=np.float32)[where[found]]
        return found, out

    def _search(self, queries: FeatureVector, k: int, rerank: int | None, nprobe: int | None):
        """SQ8 candidates, those near the k-th re-scored exactly (``rerank=0``: none)."""
        nprobe = nprobe or self.params.nprobe
        params = self._search_params.get(nprobe)
        if params is None:
            params = self._search_params[nprobe] = load_faiss().SearchParametersIVF(nprobe=nprobe)
        rerank = self.params.rerank if rerank is None else rerank
        source = self.source
        if source is None or rerank == 0:
            return self.index.search(queries, k, params=params)
        candidates = min(max(rerank, 2 * k), self.ntotal)
        step = max(1, RESCORE_FLOATS // (candidates * self.dim))
        if len(queries) <= step:  # the common case: one query, no bookkeeping
            sq8, cand = self.index.search(queries, candidates, params=params)
            if len(queries) == 1:
                return self._rescore_one(source, queries[0], sq8, cand, k)
            return self._rescore(queries, sq8, cand, k)
        scores_out = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids_out = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), step):
            q = queries[start : start + step]
            sq8, cand = self.index.search(q, candidates, params=params)
            s, i = self._rescore(q, sq8, cand, k)
            scores_out[start : start + len(q), : s.shape[1]] = s
            ids_out[start : start + len(q), : i.shape[1]] = i
        return scores_out, ids_out

    def _rescore_one(
        self, source: VectorSource, query: np.ndarray, sq8: np.ndarray, cand: np.ndarray, k: int
    ):
        """:meth:`_rescore` for one query, on plain lists (numpy per call costs more than
        the arithmetic on 20 candidates)."""
        pairs = [(s, i) for s, i in zip(sq8[0].tolist(), cand[0].tolist(), strict=True) if i >= 0]
        if not pairs:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        kth = pairs[min(k, len(pairs)) - 1][0]
        window = [i for s, i in pairs if abs(s - kth) <= RERANK_MARGIN]
        scored = [(s, i) for s, i in pairs if s > kth + RERANK_MARGIN]
        got_ids, vectors = source.vectors(window) if window else (np.zeros(0, np.int64), None)
        if len(got_ids):
            exact = np.asarray(vectors, dtype=np.float32) @ query
            scored += zip(exact.tolist(), np.asarray(got_ids).tolist(), strict=True)
        scored.sort(key=lambda pair: -pair[0])
        top = scored[:k]
        return (
            np.array([[s for s, _ in top]], dtype=np.float32),
            np.array([[i for _, i in top]], dtype=np.int64),
        )

    def _rescore(self, queries: FeatureVector, sq8: np.ndarray, cand: np.ndarray, k: int):
        """Exact scores for the candidates within RERANK_MARGIN of the k-th SQ8 score.

        Those above the window are in the top k whatever their exact score, those below
        are out: only the window needs exact vectors (~5 reads a query at 1M instead of
        20; each is a catalog row, which may be a disk read in a large library).
        """
        kth = sq8[:, min(k, sq8.shape[1]) - 1 : min(k, sq8.shape[1])]
        window = (cand >= 0) & (np.abs(sq8 - kth) <= RERANK_MARGIN)
        scores = np.where((cand >= 0) & (sq8 > kth + RERANK_MARGIN), sq8, -np.inf)
        if window.any():
            found, vectors = self._exact(cand[window])
            rows = np.nonzero(window)[0]
            exact = np.einsum("nd,nd->n", vectors, queries[rows])
            scores[window] = np.where(found, exact, -np.inf)
        return top_k(scores, cand, k)
