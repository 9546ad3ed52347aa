"""A library on disk: a directory holding the catalog, the FAISS index and the model.

Layout::

    LIBRARY/
      catalog.sqlite        images, vectors, labels, tags, errors, model description, and
                            copy-detection descriptors where on (indexer/store/copy_vectors.py)
      index-<gen>.faiss     the vector index (its generation is recorded in the catalog):
                            a FAISS file (exact "flat" kind), or for large libraries a
                            small container around an IVF-SQ8 index whose candidates
                            are re-scored with the exact vectors in catalog.sqlite
                            (see indexer/store/vector_index.py)
      vectors.f16           (IVF kind only) the exact vectors as float16 rows, which the
                            IVF re-scores its candidates with (indexer/store/exact_vectors.py)
      .lock                 held by the one process writing at a time (Library.locked,
                            which nests: an update holds it through its engine's own)
      map.npz               (web app) the library map's 2-D places (indexer/store/map_file.py)
      thumbnails/           (web app) cached thumbnails

The index file is replaced by writing a new generation aside, renaming it into
place and then recording it in the catalog, so readers always find a complete file.
The index kind follows the library size (lookalike.indexer.store.vector_index.choose_kind): when a
sync finds the library past a threshold (flat -> IVF, IVF grown or shrunk 4x since
it was trained, IVF -> flat), the new generation is rebuilt from the catalog's
vectors, streamed in chunks; ids stay the catalog ids throughout.

``Library.describe`` says what a library holds (``lookalike info``, ``/api/library``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypedDict

import numpy as np

from lookalike.indexer.errors import DamagedIndex, LibraryBusy, LibraryNotFound, ModelMismatch
from lookalike.indexer.models.copy_model import CopyModelInfo
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.models.registry import with_capabilities
from lookalike.indexer.store.boxes import box_counts
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.exact_vectors import FILE_NAME as EXACT_NAME
from lookalike.indexer.store.exact_vectors import ExactVectors, Writer, write_rows
from lookalike.indexer.store.index_file import META_KEY as INDEX_FILE_META
from lookalike.indexer.store.index_file import (
    IndexFileFacts,
    quick_problem,
    read_checked,
    save_index,
)
from lookalike.indexer.store.index_kinds import train_index
from lookalike.indexer.store.vector_index import (
    FLAT,
    IvfParams,
    VectorIndex,
    VectorSource,
    choose_kind,
)

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
LOCK_NAME = ".lock"
EXACT_META = "exact_vectors"  # "float16:<dim>" while vectors.f16 matches the catalog
EXACT_BYTES_META = "exact_vectors_bytes"  # its size when the generation was written
COPY_MODEL_META = "copy_model"  # the copy-detection model (indexer/store/copy_vectors.py)
TAGGING_META = "tagging"  # the last `lookalike tag` run (classifier/tagging/tagger.py)
BUILD_CHUNK = 20_000  # vectors read from the catalog at a time when (re)building
UPDATE_CHUNK = 50_000  # changed vectors read at a time by an update (244 MiB at d=1280)


def default_library_dir() -> Path:
    """$LOOKALIKE_LIBRARY, else a per-user data directory."""
    env = os.environ.get("LOOKALIKE_LIBRARY")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data) / "lookalike" / "library"


class LibraryFacts(TypedDict):
    """What a library holds: ``lookalike info --json`` and the web's ``/api/library``."""

    library: str
    images: int
    errors: list[dict[str, str]]  # {"path", "error"} of the files that could not be indexed
    model: str | None
    model_info: dict[str, Any] | None  # dim, preprocessing, weights_hash, descriptor
    index: dict[str, Any]  # file, kind, structure, generation, pending, problem (or None)
    copy_detection: dict[str, Any] | None  # model, descriptors; None: copy detection off
    labels: dict[str, Any]  # images, classes (label -> images)
    boxes: dict[str, int]  # human: boxes a person made; stale: of them, on changed content
    tags: dict[str, int]  # images, unknown
    tagging: Any  # what the last tagging run recorded, or None
    bytes: int  # on disk, every file of the library directory
    offline: dict[str, Any]  # images, folders: kept while their folder cannot be read


def offline_facts(paths: list[str]) -> dict[str, Any]:
    """How many images are offline, and the top-most folders holding them."""
    folders: list[str] = []
    for folder in sorted({os.path.dirname(p) for p in paths}):
        if not folders or not folder.startswith(folders[-1].rstrip(os.sep) + os.sep):
            folders.append(folder)
    return {"images": len(paths), "folders": folders}


class Library:
    """A library directory and its catalog; see the module docstring for the layout."""

    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root = root
        self.catalog = catalog
        self._lock_file: TextIO | None = None
        self._holds = 0  # nested lock() calls of this object: the lock goes with the last

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
        try:
            lib.use_model(model)
        except ModelMismatch:
            lib.close()
            raise
        return lib

    def close(self) -> None:
        self._release()
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model ---------------------------------------------------------------
    def model_info(self) -> ModelInfo | None:
        text = self.catalog.get_meta("model")
        if not text:
            return None
        info = ModelInfo.from_json(text)
        return info if "text_encoder" in text else with_capabilities(info)

    def check_model(self, model: ModelInfo) -> None:
        stored = self.model_info()
        if stored is not None and stored.key() != model.key():
            raise ModelMismatch(self.root, stored.name, model.name, model_difference(stored, model))

    def use_model(self, model: ModelInfo) -> None:
        """Record ``model`` as the library's (a new library); ModelMismatch if another
        built it."""
        self.check_model(model)
        if self.model_info() is None:
            with self.catalog.transaction() as conn:
                self.catalog.set_meta("model", model.to_json(), conn)
                self.catalog.set_meta("created", str(time.time()), conn)

    def copy_model_info(self) -> CopyModelInfo | None:
        """The copy model of the library's copy descriptors; None: copy detection is off."""
        text = self.catalog.get_meta(COPY_MODEL_META)
        return CopyModelInfo.from_json(text) if text else None

    # -- facts ---------------------------------------------------------------------
    def describe(self) -> LibraryFacts:
        """What the library holds: images, errors, models, index, labels, tags, size."""
        cat = self.catalog
        model, copies = self.model_info(), self.copy_model_info()
        labels = cat.label_counts()
        tagged, unknown = cat.tag_counts()
        kind = cat.get_meta("index_kind", "flat")
        return LibraryFacts(
            library=str(self.root),
            images=cat.count(),
            errors=[{"path": e.path, "error": e.error} for e in cat.errors()],
            model=model.name if model else None,
            model_info={
                "dim": model.dim,
                "preprocessing": model.preprocessing,
                "weights_hash": model.weights_hash,
                "descriptor": model.descriptor,
            }
            if model
            else None,
            index={
                "file": self.index_path().name if self.index_generation() else None,
                "kind": kind,
                "structure": cat.get_meta("index_structure", kind),
                "generation": self.index_generation(),
                "pending": len(cat.pending_index()),
                "problem": self.index_problem(),
            },
            copy_detection={
                "model": copies.name,
                "descriptors": (described := cat.count_copy_vectors()),
                "missing": max(0, cat.count() - described),
            }
            if copies
            else None,
            labels={"images": sum(n for _label, n in labels), "classes": dict(labels)},
            boxes=dict(zip(("human", "stale"), box_counts(cat), strict=True)),
            tags={"images": tagged, "unknown": unknown},
            tagging=json.loads(cat.get_meta(TAGGING_META) or "null"),
            bytes=self.disk_bytes(),
            offline=offline_facts(cat.offline_paths()),
        )

    # -- writer lock ---------------------------------------------------------
    def lock(self) -> None:
        """Become the one writer; LibraryBusy if another process is indexing.

        Calls nest: a holder that locks again (the pipeline around an engine that
        locks too) keeps the lock until its last ``unlock``.
        """
        if self._lock_file is None:
            f = open(self.root / LOCK_NAME, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                f.close()
                raise LibraryBusy(
                    f"another process is writing to {self.root}; wait for it to finish"
                ) from e
            self._lock_file = f
        self._holds += 1

    def writer_active(self) -> bool:
        """True when another process holds the writer lock now (an index run)."""
        if self._lock_file is not None:
            return False
        try:
            f = open(self.root / LOCK_NAME)
        except OSError:
            return False  # never written to, or unreadable: no writer to tell of
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def unlock(self) -> None:
        """Undo one ``lock``; the lock is released with the outermost."""
        if self._holds > 1:
            self._holds -= 1
            return
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        self._holds = 0

    @contextmanager
    def locked(self) -> Iterator[Library]:
        """The writer lock for the block (safe to nest)."""
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

    def index_facts(self) -> IndexFileFacts | None:
        """What the current generation's file was written with (None: an older library)."""
        text = self.catalog.get_meta(INDEX_FILE_META)
        return IndexFileFacts.from_json(text) if text else None

    def index_problem(self) -> str | None:
        """What a stat tells is wrong with the index file (missing, wrong size); None:
        nothing (``lookalike check`` reads it all)."""
        generation = self.index_generation()
        if generation == 0:
            return None
        facts = self.index_facts()
        if facts is not None and facts.generation != generation:
            facts = None
        return quick_problem(self.index_path(generation), facts)

    def load_index(self, stale: Iterable[int] = ()) -> VectorIndex:
        """The current index; an empty one when none was written yet.

        A damaged index file (indexer/store/index_file.py) is logged as a warning and the
        index rebuilt in memory from the catalog's vectors: a search never silently
        finds nothing. ``stale``: ids changed since the index was written (an IVF index
        re-scores them from the catalog, not from the float16 file).
        """
        try:
            return self.read_index(stale)
        except DamagedIndex as e:
            log.warning(
                "%s; searching an index rebuilt in memory from the catalog "
                "(lookalike check --repair, or the next lookalike index, writes a good one)",
                e,
            )
            return self._build_from_catalog(self.catalog.get_meta("index_kind"), in_memory=True)

    def read_index(self, stale: Iterable[int] = ()) -> VectorIndex:
        """The current index file, checked against what was written; DamagedIndex if
        it is not that file (an empty index when none was written yet)."""
        stale = list(stale)
        info = self.model_info()
        dim = info.dim if info else 0
        problem = None
        for _attempt in range(5):
            generation = self.index_generation()
            if generation == 0:
                return VectorIndex.empty(dim)
            facts = self.index_facts()
            path = self.index_path(generation)
            if facts is not None and facts.generation > generation:
                # A writer committed a generation between the two reads: read again.
                problem = DamagedIndex(path, "changed while it was being read")
                continue
            if facts is not None and facts.generation < generation:
                facts = None  # written by code that did not record the facts
            try:
                # An IVF index re-scores its candidates with the catalog's exact vectors.
                index = read_checked(path, facts, self.exact_source(stale), dim)
            except DamagedIndex as e:
                if self.index_generation() == generation:
                    raise
                # A writer replaced the generation between our read of the catalog
                # and the open; read the catalog again.
                problem = e
                time.sleep(0.05)
                continue
            if facts is None:
                self._check_count(path, index, stale)
            return index
        assert problem is not None
        raise problem

    def _check_count(self, path: Path, index: VectorIndex, stale: list[int]) -> None:
        """A file without recorded facts: its count must be the catalog's, give or take
        the changes since it was written."""
        n = self.catalog.count_vectors()
        if abs(index.ntotal - n) > len(stale):
            raise DamagedIndex(
                path, f"holds {index.ntotal:,} vectors, the catalog {n:,} ({len(stale)} changed)"
            )

    def live_index(self) -> VectorIndex:
        """The index file plus, in memory, what was committed since it was written.

        Readers use this: a search during (or after an interrupted) indexing run sees
        every committed image, without writing anything.
        """
        pending = self.catalog.pending_index()  # before the index: a superset is harmless
        index = self.load_index(stale=pending)
        return self._updated(index, pending) if pending else index

    def state(self) -> tuple[int, int]:
        """Changes whenever the indexed content changes (cheap; for reload checks)."""
        return (self.index_generation(), self.catalog.content_version())

    def sync_index(self) -> VectorIndex:
        """Apply the vectors changed since the last index write; write a new generation.

        When the library has crossed a size threshold for its index kind, the new
        generation is rebuilt (and retrained) from the catalog instead.
        """
        pending = self.catalog.pending_index()
        try:
            current = self.read_index(stale=pending)
        except DamagedIndex as e:
            # Never a generation built on a damaged file: the catalog is the truth.
            log.warning("%s; rebuilding the index from the catalog's vectors", e)
            return self.rebuild_index(current_kind=self.catalog.get_meta("index_kind"))
        if not pending and self.index_generation() > 0:
            return current
        # After this sync the index holds exactly the catalog's vectors.
        n = self.catalog.count_vectors()
        if current.needs_rebuild(n):
            log.info("library reached %d images: rebuilding its index", n)
            return self.rebuild_index(current_kind=current.kind)
        # The changed rows of vectors.f16 are written as _updated reads them: one read.
        rows = self._write_exact_rows if self._exact_file_current(current) else None
        index = self._updated(current, pending, rows)
        self._write_generation(index, pending)
        return index

    def rebuild_index(self, current_kind: str | None = None) -> VectorIndex:
        """Build the index from every vector in the catalog (repairs a lost file).

        The kind follows the library size; ``current_kind`` only adds hysteresis.
        """
        with self.catalog.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO pending_index SELECT id FROM images")
        index = self._build_from_catalog(current_kind)
        self._write_generation(index, None)
        return index

    def _write_generation(self, index: VectorIndex, pending: list[int] | None) -> None:
        """Save ``index`` as the next generation; clear ``pending`` (None: all of it)."""
        gen = self.index_generation() + 1
        exact = self._update_exact_file(index, pending)
        facts = save_index(index, self.index_path(gen), gen)
        with self.catalog.transaction() as conn:
            self.catalog.set_meta(INDEX_FILE_META, facts.to_json(), conn)
            self.catalog.set_meta(EXACT_META, exact, conn)
            self.catalog.set_meta(EXACT_BYTES_META, str(self._exact_bytes()), conn)
            self.catalog.set_meta("index_generation", str(gen), conn)
            self.catalog.set_meta("index_kind", index.kind, conn)
            self.catalog.set_meta("index_structure", index.describe(), conn)
            if pending is None:
                conn.execute("DELETE FROM pending_index")
            else:
                self.catalog.clear_pending(conn, pending)
        self._remove_stale_index_files(keep=gen)

    def _build_from_catalog(self, current_kind: str | None, in_memory: bool = False) -> VectorIndex:
        """An index of the kind for the catalog's size; vectors read in chunks.

        ``in_memory`` (a reader): an IVF index re-scores from the catalog, and no
        vectors.f16 is written.
        """
        ids = self._vector_ids()
        info = self.model_info()
        dim = info.dim if info else 0
        kind = choose_kind(len(ids), current_kind)
        if kind == FLAT or len(ids) == 0:
            index = VectorIndex.empty(dim)
        else:
            params = IvfParams.for_size(len(ids), dim)
            rng = np.random.default_rng(len(ids))
            sample_ids = np.sort(rng.choice(ids, params.train_size(len(ids)), replace=False))
            _ids, sample = self.catalog.vectors(sample_ids, dim=dim)
            index = train_index(sample, len(ids), kind)
            index.attach(self.catalog)
        if index.kind == FLAT or in_memory:
            for chunk_ids, vectors in self._catalog_chunks(ids, dim):
                index.add(chunk_ids, vectors)
            return index
        with Writer(self.root / EXACT_NAME, dim) as writer:
            for chunk_ids, vectors in self._catalog_chunks(ids, dim):
                index.add(chunk_ids, vectors)
                writer.add(chunk_ids, vectors)
        index.attach(ExactVectors(self.root / EXACT_NAME, dim, fallback=self.catalog))
        return index

    # -- exact vectors for re-scoring (IVF kind) -----------------------------------
    def exact_source(self, stale: Iterable[int] = ()) -> VectorSource:
        """Where an IVF index reads exact vectors: the float16 file when it is up to
        date (ids in ``stale`` and rows it lacks still come from the catalog)."""
        info = self.model_info()
        path = self.root / EXACT_NAME
        if info and self.catalog.get_meta(EXACT_META) == _exact_tag(info.dim) and path.exists():
            written = int(self.catalog.get_meta(EXACT_BYTES_META, "0") or 0)
            if path.stat().st_size < written:  # a sync only ever makes it longer
                log.warning(
                    "%s is shorter than written (%d bytes, not %d): re-scoring from the "
                    "catalog (lookalike check --repair rebuilds it)",
                    path,
                    path.stat().st_size,
                    written,
                )
                return self.catalog
            try:
                return ExactVectors(path, info.dim, fallback=self.catalog, stale=stale)
            except OSError:
                pass
        return self.catalog

    def _exact_file_current(self, index: VectorIndex) -> bool:
        """True when ``index`` re-scores from vectors.f16 and the file is up to date
        except for the pending ids (so writing their rows brings it in line)."""
        return (
            index.kind != FLAT
            and self.catalog.get_meta(EXACT_META) == _exact_tag(index.dim)
            and (self.root / EXACT_NAME).exists()
        )

    def _write_exact_rows(self, ids: list[int], present: np.ndarray, vectors) -> None:
        """The rows of changed ``ids`` in vectors.f16: their vectors, zeros if removed."""
        path, dim = self.root / EXACT_NAME, vectors.shape[1]
        write_rows(path, dim, present, vectors)
        write_rows(path, dim, np.setdiff1d(ids, present), None)

    def _update_exact_file(self, index: VectorIndex, pending: list[int] | None) -> str:
        """Bring the float16 file in line with the catalog before a generation is
        recorded; returns its meta tag ("" when the index kind needs none).

        A rebuild (``pending`` None) wrote a whole new file; a sync wrote the pending
        rows while it read them (sync_index), unless the file was not up to date.
        """
        path = self.root / EXACT_NAME
        if index.kind == FLAT:
            path.unlink(missing_ok=True)
            return ""
        if pending is not None and not self._exact_file_current(index):
            with Writer(path, index.dim) as writer:  # first IVF sync of an older library
                for chunk_ids, vectors in self._catalog_chunks(self._vector_ids(), index.dim):
                    writer.add(chunk_ids, vectors)
        return _exact_tag(index.dim)

    def _exact_bytes(self) -> int:
        path = self.root / EXACT_NAME
        return path.stat().st_size if path.exists() else 0

    def _vector_ids(self) -> np.ndarray:
        return self.catalog.vector_ids()

    def _catalog_chunks(self, ids: np.ndarray, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of ``ids`` from the catalog, BUILD_CHUNK at a time."""
        for start in range(0, len(ids), BUILD_CHUNK):
            yield self.catalog.vectors(ids[start : start + BUILD_CHUNK], dim=dim)

    def _updated(
        self,
        index: VectorIndex,
        pending: list[int],
        also: Callable[[list[int], np.ndarray, np.ndarray], None] | None = None,
    ) -> VectorIndex:
        """``index`` without the ``pending`` ids, plus their current catalog vectors.

        The vectors are read and added UPDATE_CHUNK at a time, so a reader catching up
        on millions of new images never holds them all (``pending`` is id-ordered, so
        the chunks add them in the order one read would). ``also`` gets each chunk
        (its ids, those with a vector, the vectors) as it is read.
        """
        index.remove(np.array(pending, dtype=np.int64))
        for start in range(0, len(pending), UPDATE_CHUNK):
            chunk = pending[start : start + UPDATE_CHUNK]
            present, vectors = self.catalog.vectors(chunk, dim=index.dim)
            if index.dim == 0 and len(vectors):
                index = VectorIndex.empty(vectors.shape[1])
            index.add(present, vectors)
            if also is not None:
                also(chunk, present, vectors)
        return index

    def _remove_stale_index_files(self, keep: int) -> None:
        for path in self.root.glob("index-*.faiss"):
            if path.name != f"index-{keep}.faiss":
                path.unlink(missing_ok=True)
        for pattern in (".index-*.faiss.*.tmp", f".{EXACT_NAME}.*.tmp"):
            for path in self.root.glob(pattern):
                path.unlink(missing_ok=True)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def _exact_tag(dim: int) -> str:
    return f"float16:{dim}"


def model_difference(stored: ModelInfo, model: ModelInfo) -> str:
    """Why two model descriptions with the same name differ ("" when the names differ)."""
    if stored.name != model.name:
        return ""
    if stored.weights_hash != model.weights_hash:
        where = stored.extra.get("weights") or "its pretrained weights"
        return f"weights sha256 {stored.weights_hash} ({where}), not {model.weights_hash}"
    return (
        f"settings {stored.dim}/{stored.preprocessing}/{stored.descriptor}, "
        f"not {model.dim}/{model.preprocessing}/{model.descriptor}"
    )
