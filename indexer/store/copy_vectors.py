"""Copy-detection descriptors of a library: computing them, and searching them.

A library with copy detection on (``lookalike index --copy-detection``) records its
copy model in the catalog's meta (``copy_model``, read by ``Library.copy_model_info``)
and keeps one descriptor per image in the ``copy_vectors`` table (float16, 1 KB at 512
dimensions). ``build`` computes the missing ones after each indexing run: images added
or changed since (a content change deletes the old descriptor; a move keeps it). It
commits every ``COMMIT_EVERY`` images, so an interrupted run keeps what it finished and
the next run does the rest.

``CopyIndex`` is a reader's exact in-memory index of those descriptors (float16,
FAISS ``SQfp16``: 1 GB at 1M images). It catches up with what writers committed by
reading only the rows written since it last looked (their ``seq``), and notices
removals by the row count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.indexer.errors import LookalikeError, UnreadableImage
from lookalike.indexer.images import DEFAULT_MAX_PIXELS, load_image
from lookalike.indexer.loading import read_ahead
from lookalike.indexer.models.copy_model import (
    SHORT_SIDE,
    CopyModel,
    CopyModelInfo,
)
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.indexer.store.library import COPY_MODEL_META, Library

log = logging.getLogger(__name__)

COMMIT_EVERY = 64  # descriptors per transaction
READ_CHUNK = 50_000  # rows a reader loads at a time while catching up


@dataclass
class CopySummary:
    computed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    total: int = 0  # images with a descriptor after the run


def enable(library: Library, model: CopyModel) -> None:
    """Record ``model`` as the library's copy model (the writer's lock held). Descriptors
    of another model are dropped: they cannot be compared with the new model's."""
    cat = library.catalog
    stored = library.copy_model_info()
    with cat.transaction() as conn:
        if stored is not None and stored.sha256 != model.info.sha256:
            cat.clear_copy_vectors(conn)
        cat.set_meta(COPY_MODEL_META, model.info.to_json(), conn)


def disable(library: Library) -> None:
    """Turn copy detection off: the descriptors and the recorded model go."""
    cat = library.catalog
    with cat.transaction() as conn:
        cat.clear_copy_vectors(conn)
        conn.execute("DELETE FROM meta WHERE key = ?", (COPY_MODEL_META,))


def build(
    library: Library,
    model: CopyModel,
    *,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Callable[[int, int], None] | None = None,
) -> CopySummary:
    """Compute the descriptors the library lacks (the writer's lock held).

    Files are read again (JPEGs decoded at a reduced scale where it keeps 288 px);
    one that cannot be read now (gone or damaged since it was indexed), or that the
    model fails on, is reported in the summary and tried again next run.
    """
    cat = library.catalog
    todo = cat.without_copy_vectors()
    summary = CopySummary()
    done = 0

    def load(item: tuple[int, str]):
        image_id, path = item
        try:
            return image_id, path, load_image(path, min_side=SHORT_SIDE, max_pixels=max_pixels)
        except UnreadableImage as e:
            return image_id, path, e

    ids: list[int] = []
    vectors: list[np.ndarray] = []

    def commit() -> None:
        with cat.transaction() as conn:
            if ids:
                cat.write_copy_vectors(conn, ids, np.stack(vectors))
        ids.clear()
        vectors.clear()

    if on_progress is not None:
        on_progress(0, len(todo))
    for image_id, path, loaded in read_ahead(load, todo, workers, 4 * max(1, workers)):
        if isinstance(loaded, UnreadableImage):
            summary.skipped.append((path, loaded.reason))
        else:
            try:
                vector = model.embed(loaded.image)
            except Exception as e:  # this image's pixels, not the run: report, go on
                log.warning("copy model failed on %s: %s", path, e)
                summary.skipped.append((path, f"copy model failed: {e}"))
            else:
                ids.append(image_id)
                vectors.append(vector)
                summary.computed += 1
        done += 1
        if len(ids) >= COMMIT_EVERY:
            commit()
        if on_progress is not None:
            on_progress(done, len(todo))
    if ids:
        commit()
    summary.total = cat.count_copy_vectors()
    return summary


class CopyIndex:
    """Exact search over a library's copy descriptors, kept up to date with the catalog."""

    def __init__(self, catalog: Catalog, info: CopyModelInfo) -> None:
        self.catalog = catalog
        self.info = info
        self._faiss = load_faiss()
        self._index: Any = new_faiss_index(info.dim)
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def refresh(self) -> None:
        """Take in the descriptors written since the last look, and drop removed images'."""
        with self._lock:
            while True:
                seq, ids, rows = self.catalog.copy_vectors_since(self._seq, READ_CHUNK)
                if not len(ids):
                    break
                if rows.shape[1] != self.info.dim:
                    raise LookalikeError(
                        f"copy descriptors of {rows.shape[1]} dimensions in a library whose "
                        f"copy model gives {self.info.dim}"
                    )
                self._index.remove_ids(ids)  # an older descriptor of the same image
                self._index.add_with_ids(rows.astype(np.float32), ids)
                self._seq = seq
            if self._index.ntotal != self.catalog.count_copy_vectors():
                present = self.catalog.copy_vector_ids()
                ours = self._faiss.vector_to_array(self._index.id_map).astype(np.int64)
                gone = np.setdiff1d(ours, present)
                if len(gone):
                    self._index.remove_ids(gone)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row; ids -1 pad when the library is smaller."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        with self._lock:
            if self._index.ntotal == 0:
                n = len(queries)
                return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
            return self._index.search(queries, k)


def new_faiss_index(dim: int) -> Any:
    """The exact index of copy descriptors: float16 codes, inner product, catalog ids
    (typed Any: faiss's stubs lack the numpy overloads)."""
    faiss = load_faiss()
    sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(sq)
