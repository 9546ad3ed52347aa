"""A library on disk: a directory holding the catalog, the FAISS index and the model.

Layout::

    LIBRARY/
      catalog.sqlite        images, vectors, labels, tags, errors, model description
      index-<gen>.faiss     the vector index (its generation is recorded in the catalog)
      .lock                 held by the one process writing at a time
      thumbnails/           (web app) cached thumbnails

The index file is replaced by writing a new generation aside, renaming it into
place and then recording it in the catalog, so readers always find a complete file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog
from indexer.embedder import ModelInfo
from indexer.errors import LibraryBusy, LibraryNotFound, ModelMismatch
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
LOCK_NAME = ".lock"


def default_library_dir() -> Path:
    """$LOOKALIKE_LIBRARY, else a per-user data directory."""
    env = os.environ.get("LOOKALIKE_LIBRARY")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data) / "lookalike" / "library"


class Library:
    """A library directory and its catalog; see the module docstring for the layout."""

    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root = root
        self.catalog = catalog
        self._lock_file = None

    @classmethod
    def open(cls, root: str | Path | None = None, *, readonly: bool = True) -> Library:
        """Open an existing library (read-only unless asked)."""
        root = Path(root or default_library_dir()).expanduser().absolute()
        path = root / CATALOG_NAME
        if not path.exists():
            raise LibraryNotFound(root)
        return cls(root, Catalog(path, readonly=readonly))

    @classmethod
    def create(cls, root: str | Path | None, model: ModelInfo) -> Library:
        """Open a library for writing, creating it for ``model`` if it does not exist.

        Raises:
            ModelMismatch: the library was built with another model.
        """
        root = Path(root or default_library_dir()).expanduser().absolute()
        root.mkdir(parents=True, exist_ok=True)
        lib = cls(root, Catalog(root / CATALOG_NAME))
        stored = lib.model_info()
        if stored is None:
            with lib.catalog.transaction() as conn:
                lib.catalog.set_meta("model", model.to_json(), conn)
                lib.catalog.set_meta("created", str(time.time()), conn)
        elif stored.key() != model.key():
            lib.close()
            raise ModelMismatch(root, stored.name, model.name)
        return lib

    def close(self) -> None:
        self.unlock()
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model ---------------------------------------------------------------
    def model_info(self) -> ModelInfo | None:
        text = self.catalog.get_meta("model")
        return ModelInfo.from_json(text) if text else None

    def check_model(self, model: ModelInfo) -> None:
        stored = self.model_info()
        if stored is not None and stored.key() != model.key():
            raise ModelMismatch(self.root, stored.name, model.name)

    # -- writer lock ---------------------------------------------------------
    def lock(self) -> None:
        """Become the one writer; LibraryBusy if another process is indexing."""
        if self._lock_file is not None:
            return
        f = open(self.root / LOCK_NAME, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            f.close()
            raise LibraryBusy(
                f"another process is writing to {self.root}; wait for it to finish"
            ) from e
        self._lock_file = f

    def unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @contextmanager
    def locked(self) -> Iterator[Library]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    # -- index file ------------------------------------------------------------
    def index_generation(self) -> int:
        return int(self.catalog.get_meta("index_generation", "0") or 0)

    def index_path(self, generation: int | None = None) -> Path:
        gen = self.index_generation() if generation is None else generation
        return self.root / f"index-{gen}.faiss"

    def load_index(self) -> VectorIndex:
        """The current index; an empty one when none was written yet."""
        for _attempt in range(5):
            path = self.index_path()
            if self.index_generation() == 0:
                break
            try:
                return VectorIndex.load(path)
            except RuntimeError:
                # A writer replaced the generation between our read of the catalog and
                # the open; read the catalog again.
                time.sleep(0.05)
        info = self.model_info()
        return VectorIndex.empty(info.dim if info else 0)

    def live_index(self) -> VectorIndex:
        """The index file plus, in memory, what was committed since it was written.

        Readers use this: a search during (or after an interrupted) indexing run sees
        every committed image, without writing anything.
        """
        index = self.load_index()
        pending = self.catalog.pending_index()
        return self._updated(index, pending) if pending else index

    def state(self) -> tuple[int, int]:
        """Changes whenever the indexed content changes (cheap; for reload checks)."""
        return (self.index_generation(), self.catalog.content_version())

    def sync_index(self) -> VectorIndex:
        """Apply the vectors changed since the last index write; write a new generation."""
        pending = self.catalog.pending_index()
        current = self.load_index()
        if not pending and self.index_generation() > 0:
            return current
        index = self._updated(current, pending)
        gen = self.index_generation() + 1
        index.save(self.index_path(gen))
        with self.catalog.transaction() as conn:
            self.catalog.set_meta("index_generation", str(gen), conn)
            self.catalog.set_meta("index_kind", index.kind, conn)
            self.catalog.clear_pending(conn, pending)
        self._remove_stale_index_files(keep=gen)
        return index

    def rebuild_index(self) -> VectorIndex:
        """Build the index from every vector in the catalog (repairs a lost file)."""
        with self.catalog.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO pending_index SELECT id FROM images")
        info = self.model_info()
        empty = VectorIndex.empty(info.dim if info else 0)
        ids, vectors = self.catalog.vectors(dim=empty.dim)
        empty.add(ids, vectors)
        gen = self.index_generation() + 1
        empty.save(self.index_path(gen))
        with self.catalog.transaction() as conn:
            self.catalog.set_meta("index_generation", str(gen), conn)
            conn.execute("DELETE FROM pending_index")
        self._remove_stale_index_files(keep=gen)
        return empty

    def _updated(self, index: VectorIndex, pending: list[int]) -> VectorIndex:
        ids = np.array(pending, dtype=np.int64)
        index.remove(ids)
        present, vectors = self.catalog.vectors(pending, dim=index.dim)
        if index.dim == 0 and len(vectors):
            index = VectorIndex.empty(vectors.shape[1])
        index.add(present, vectors)
        return index

    def _remove_stale_index_files(self, keep: int) -> None:
        for path in self.root.glob("index-*.faiss"):
            if path.name != f"index-{keep}.faiss":
                path.unlink(missing_ok=True)
        for path in self.root.glob(".index-*.faiss.*.tmp"):
            path.unlink(missing_ok=True)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
