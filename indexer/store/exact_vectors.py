"""Exact vectors beside an IVF index: a float16 file read by row, for re-scoring.

An IVF-SQ8 index re-scores the few candidates near its k-th score with their exact
vectors. Reading them from the catalog costs a B-tree walk and overflow pages per
row (~0.45 ms a query at 1M images); this file holds the same vectors as float16 at
``id x dim x 2`` bytes, so a row is one ``pread`` (a few microseconds when the OS
page cache holds it). Rows are read with ``pread``, not memory-mapped, so they do not
count against the process's resident memory. float16 keeps scores within ~1e-5 of the
float32 ones (neighbours at 1M sit ~1e-3 apart).

The catalog stays the truth. The file is written by the library's one writer when it
writes an index generation: rows of the changed ids in place (a removed image's row
becomes zeros) or, on a rebuild, a whole new file renamed into place. A reader routes
to the catalog every id whose row may be out of date: the ids changed since the index
was written (``stale``), and any row that reads as zeros (absent, removed, or past the
end of the file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.vector_index import VectorSource

FILE_NAME = "vectors.f16"
DTYPE = np.dtype("<f2")
# A sorted id set this dense (span / count) is read as one range instead of row by row.
RANGE_DENSITY = 4


class ExactVectors:
    """A :class:`VectorSource` over the float16 file, with the catalog for the rest."""

    def __init__(
        self,
        path: str | Path,
        dim: int,
        fallback: VectorSource | None = None,
        stale: Iterable[int] = (),
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.row_bytes = dim * DTYPE.itemsize
        self.fallback = fallback
        self.stale = frozenset(int(i) for i in stale)
        self._fd = -1  # so that __del__ of a half-made instance has nothing to close
        self._fd = os.open(self.path, os.O_RDONLY)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    def vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, FeatureVector]:
        """(ids found, float32 vectors); unknown ids are left out (VectorSource)."""
        asked = [int(i) for i in ids]
        wanted = [i for i in asked if i not in self.stale] if self.stale else asked
        wanted_ids = np.array(wanted, dtype=np.int64)
        rows = self.rows(wanted_ids)
        present = rows.view(np.uint16).any(axis=1)  # integer test: float16 math is slow
        found_ids, found = wanted_ids[present], rows[present].astype(np.float32)
        if len(found_ids) < len(asked) and self.fallback is not None:
            missing = sorted(set(asked) - set(found_ids.tolist()))
            more_ids, more = self.fallback.vectors(missing)
            if len(more_ids):
                found_ids = np.concatenate([found_ids, np.asarray(more_ids, np.int64)])
                found = np.concatenate([found, np.asarray(more, np.float32).reshape(-1, self.dim)])
        return found_ids, found

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """float16 rows of ``ids`` (zeros for rows past the end of the file)."""
        size = self.row_bytes
        if len(ids) > 8 and int(ids.max()) - int(ids.min()) < RANGE_DENSITY * len(ids):
            lo, hi = int(ids.min()), int(ids.max())
            data = os.pread(self._fd, (hi - lo + 1) * size, lo * size)
            block = np.frombuffer(data, dtype=DTYPE)
            block = block[: len(block) // self.dim * self.dim].reshape(-1, self.dim)
            out = np.zeros((len(ids), self.dim), dtype=DTYPE)
            inside = ids - lo < len(block)
            out[inside] = block[ids[inside] - lo]
            return out
        chunks = [os.pread(self._fd, size, i * size) for i in ids.tolist()]
        data = b"".join(c if len(c) == size else bytes(size) for c in chunks)
        return np.frombuffer(data, dtype=DTYPE).reshape(len(ids), self.dim)


def write_rows(path: str | Path, dim: int, ids: np.ndarray, vectors: FeatureVector | None) -> None:
    """Write the rows of ``ids`` in place (``vectors`` None: zero them), then fsync."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return
    if vectors is None:
        rows = np.zeros((len(ids), dim), DTYPE)
    else:
        rows = np.asarray(vectors, dtype=np.float32).astype(DTYPE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        _pwrite_rows(fd, dim, ids, rows)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_rows(fd: int, dim: int, ids: np.ndarray, rows: np.ndarray) -> None:
    row_bytes = dim * DTYPE.itemsize
    order = np.argsort(ids, kind="stable")
    for i, row in zip(ids[order].tolist(), rows[order], strict=True):
        os.pwrite(fd, row.tobytes(), i * row_bytes)


class Writer:
    """A new file, filled in chunks and renamed into place (a rebuild)."""

    def __init__(self, path: str | Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def add(self, ids: np.ndarray, vectors: FeatureVector) -> None:
        rows = np.asarray(vectors, dtype=np.float32).astype(DTYPE)
        _pwrite_rows(self._fd, self.dim, np.asarray(ids, dtype=np.int64), rows)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.tmp.unlink(missing_ok=True)
