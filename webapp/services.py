"""The web app's one door to a library: reads, searches and the few writes it makes.

One ``LibraryService`` per app holds the Searcher (model and index loaded once per
process; the Searcher reloads the index when an indexing run commits), a read-only
catalog per thread, and one writable catalog behind a lock. Reads are catalog
methods (lookalike.indexer.store.catalog), label changes go through
lookalike.classifier.labels (as the CLI's do); routes call these methods and turn the
dicts they return into JSON or pages; nothing here imports Flask.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from PIL import Image

from lookalike.classifier import labels
from lookalike.indexer.errors import BadQuery, LibraryBusy, LookalikeError
from lookalike.indexer.identity import open_as_indexed
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.models.registry import is_default_model, load_embedder_for
from lookalike.indexer.store import image_marks
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.library import CATALOG_NAME, Library
from lookalike.search.searcher import Searcher, SearchResult
from lookalike.webapp.suggest import SuggestionSource

log = logging.getLogger(__name__)

# What a client is told of an unexpected error (the log has the exception and its
# traceback; its text can hold paths and internals a page should not show).
INTERNAL_ERROR = "internal error; the server log has the details"


class NotFound(LookalikeError):
    """No indexed image (or other object) with this id."""

    def __init__(self, what: str, key: object, message: str | None = None) -> None:
        self.what = what
        self.key = key
        super().__init__(message or f"no {what} with id {key}")


class MediaFile(NamedTuple):
    """An indexed image's file, open and checked (LibraryService.media_file)."""

    path: str
    digest: str
    file: BinaryIO


class LibraryService:
    """Everything the routes need from one library (see module docstring)."""

    def __init__(
        self,
        root: str | Path,
        embedder: Embedder | None = None,
        embed_threads: int | None = None,
        rerank: bool | None = None,
        multiview: bool | None = None,
    ) -> None:
        """``rerank``, ``multiview``: the Searcher's settings (None: its defaults)."""
        self.library = Library.open(root, readonly=True)
        self.root = self.library.root
        if embedder is None:
            embedder = _server_embedder(self.library, embed_threads)
        chosen = {"rerank": rerank, "multiview": multiview}
        self.searcher = Searcher(
            self.library, embedder, **{k: v for k, v in chosen.items() if v is not None}
        )
        self._suggestions = SuggestionSource(self)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer: Catalog | None = None

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.searcher.close()

    def warm_up(self) -> None:
        """Load the model and the index now rather than on the first query (and the
        copy descriptors, in a library with copy detection: robust searches use them)."""
        self.searcher.embed_image(Image.new("RGB", (320, 320), (128, 128, 128)))
        _ = self.searcher.index
        self.searcher.copy_search()

    # -- connections ------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        """This thread's read-only catalog (SQLite connections are not shared)."""
        catalog: Catalog | None = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = Catalog(self.root / CATALOG_NAME, readonly=True)
            self._local.catalog = catalog
        return catalog

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's read-only connection (webapp/suggest.py reads it directly)."""
        return self.catalog.conn

    @contextmanager
    def writer(self) -> Iterator[Catalog]:
        """The shared writable catalog, held by this thread (one writer at a time)."""
        with self._write_lock:
            if self._writer is None:
                try:
                    self._writer = Catalog(self.root / CATALOG_NAME)
                except sqlite3.OperationalError as e:
                    raise LibraryBusy(f"cannot write to the library {self.root}: {e}") from e
            try:
                yield self._writer
            except sqlite3.OperationalError as e:
                raise LibraryBusy(f"cannot write to the library {self.root}: {e}") from e

    @contextmanager
    def writing(self) -> Iterator[tuple[Catalog, sqlite3.Connection]]:
        """One write transaction on the shared writable catalog."""
        with self.writer() as catalog, catalog.transaction() as conn:
            yield catalog, conn

    @contextmanager
    def writable(self) -> Iterator[Library]:
        """The shared writable catalog as a Library, for the classifier's writes."""
        with self.writer() as catalog:
            yield Library(self.root, catalog)

    # -- facts ------------------------------------------------------------------
    def model_name(self) -> str | None:
        info = self.library.model_info()
        return info.name if info else None

    def copy_model_name(self) -> str | None:
        """The library's copy-detection model (robust searches use it), or None."""
        info = self.library.copy_model_info()
        return info.name if info else None

    def text_search(self) -> bool:
        """True for libraries built with a model that embeds text (CLIP)."""
        info = self.library.model_info()
        return info is not None and info.text_encoder

    def object_search(self) -> bool:
        """True when the main object of a query can be localised (a model with a
        classifier head: the default CNN's class-activation map)."""
        info = self.library.model_info()
        return info is not None and info.class_head

    def health(self) -> dict[str, Any]:
        catalog = self.catalog
        return {
            "status": "ok",
            "library": str(self.root),
            "images": catalog.count(),
            "model": self.model_name(),
            "text_search": self.text_search(),
            "object_search": self.object_search(),
            "copy_detection": self.copy_model_name(),
            "content_version": catalog.content_version(),
        }

    def info(self) -> dict[str, Any]:
        """What ``lookalike info --json`` prints, with the errors as a count (the list
        can be long; /api/errors pages it)."""
        facts = self.library.describe()
        return {**facts, "errors": len(facts["errors"])}

    # -- images -----------------------------------------------------------------
    def image(self, image_id: int) -> dict[str, Any]:
        catalog = self.catalog
        row = catalog.image(image_id)
        if row is None:
            raise NotFound("image", image_id)
        doc = _card(row["id"], row["path"], row["hash"])
        cards = catalog.cards([image_id])
        doc.update(
            offline=bool(cards and cards[0].offline),
            hidden=image_id in image_marks.hidden_ids(catalog),
            width=row["width"],
            height=row["height"],
            size=row["size"],
            label=catalog.label_row(image_id),
            tag=catalog.tag_row(image_id),
            suggestions=self.suggestions(image_id),
            preview_url=f"/api/images/{image_id}/preview?v={row['hash'][:16]}",
            file_url=f"/api/images/{image_id}/file",
        )
        return doc

    def file_of(self, image_id: int) -> tuple[str, str]:
        """(path, content hash) of an indexed image; NotFound otherwise."""
        row = self.catalog.image(image_id)
        if row is None:
            raise NotFound("image", image_id)
        return row["path"], row["hash"]

    def media_file(self, image_id: int) -> MediaFile:
        """An indexed image's file, opened and checked to be the file indexed (a
        regular file of the indexed device, inode, size and mtime; see
        lookalike.indexer.identity); the caller closes it.

        Raises:
            NotFound: no such image, or its file is gone or changed since indexing
                (replaced, truncated, swapped for a symlink): not served until it is
                indexed again.
        """
        found = self.catalog.indexed_file(image_id)
        if found is None:
            raise NotFound("image", image_id)
        path, digest, indexed = found
        file = open_as_indexed(path, indexed)
        if file is None:
            raise NotFound("image file as indexed (it is gone or changed; index again)", image_id)
        return MediaFile(path, digest, file)

    def suggestions(self, image_id: int, n: int = 3) -> list[dict[str, Any]]:
        """Zero-config tag suggestions (see lookalike.webapp.suggest)."""
        return self._suggestions.for_image(image_id, n)

    def cards(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Grid cards (path, thumbnail, human label, predicted tag) for the given ids."""
        out: dict[int, dict[str, Any]] = {}
        for r in self.catalog.cards(ids):
            card = _card(r.id, r.path, r.hash)
            card["label"] = r.label
            card["offline"] = r.offline
            card["tag"] = (
                {"label": r.tag, "confidence": round(r.confidence or 0.0, 4)} if r.tagged else None
            )
            out[r.id] = card
        return out

    def ids_of_paths(self, paths: Iterable[str]) -> dict[str, int]:
        """path -> id for the given paths that are indexed."""
        return self.catalog.ids_of_paths(paths)

    def paths_of_ids(self, ids: Sequence[int]) -> list[str]:
        """The paths of indexed images, in order; NotFound for an unknown id."""
        return [self.file_of(int(i))[0] for i in ids]

    def scored(self, results: Sequence[SearchResult]) -> list[dict[str, Any]]:
        """Search results as JSON-able cards, in order."""
        cards = self.cards([r.id for r in results])
        out = []
        for r in results:
            card = cards.get(r.id)
            if card is None:  # removed between the search and this read
                continue
            out.append({**card, "score": round(float(r.score), 6), "match": r.match})
        return out

    def label_counts(self) -> list[dict[str, Any]]:
        return [{"label": label, "count": n} for label, n in self.catalog.label_counts()]

    # -- human labels (through lookalike.classifier.labels, as the CLI) ---------------------
    def set_label(self, image_id: int, label: Any, origin: str = "manual") -> dict[str, Any]:
        """Set (or fix) the image's human label; its predicted tag is dropped. The answer
        is read before the writer is let go, so it shows this request's label, not one
        that a concurrent request gave the same image a moment later."""
        with self._labelled([image_id], label, origin):
            return self.image(image_id)

    def set_labels(self, ids: Sequence[int], label: Any, origin: str = "manual") -> int:
        """One human label for many images, all or nothing; returns how many."""
        with self._labelled(ids, label, origin) as done:
            return len(done)

    @contextmanager
    def _labelled(self, ids: Sequence[int], label: Any, origin: str) -> Iterator[list[int]]:
        """Labels the images and holds the writer while the caller reads the result."""
        if not isinstance(label, str):
            raise BadQuery("a label must be a non-empty string")
        ids = sorted({int(i) for i in ids})
        known = self.ids_known(ids)
        missing = [i for i in ids if i not in known]
        if missing:  # checked here for a 404; nothing is written
            raise NotFound("image", missing[0])
        with self.writable() as library:
            labels.set_labels(library, ids, label, origin)
            yield ids

    def remove_label(self, image_id: int) -> dict[str, Any]:
        self.file_of(image_id)
        with self.writable() as library:
            labels.remove_labels(library, [image_id])
            return self.image(image_id)

    def ids_known(self, ids: Sequence[int]) -> set[int]:
        return self.catalog.existing_ids(ids)

    def accept_tag(self, image_id: int) -> dict[str, Any]:
        """The predicted tag becomes the image's human label."""
        self.file_of(image_id)
        tag = self.catalog.tag_row(image_id)
        if tag is None:
            raise BadQuery(f"image {image_id} has no predicted tag to accept")
        if tag["label"] is None:
            raise BadQuery(
                f"image {image_id} is tagged 'unknown'; give it a label instead of accepting"
            )
        return self.set_label(image_id, tag["label"], origin="manual")

    def dismiss_tag(self, image_id: int) -> dict[str, Any]:
        """Forget the predicted tag (the next tagging run may predict it again)."""
        self.file_of(image_id)
        with self.writer() as catalog:
            with catalog.transaction() as conn:
                catalog.remove_tags(conn, [image_id])
            return self.image(image_id)


def _server_embedder(library: Library, threads: int | None) -> Embedder | None:
    """The default model as a server runs it (other models: None, the Searcher's choice).

    A server runs many queries at once, each on its own request thread. ``threads``
    model threads per query, or (None) every core for a query that runs alone and one
    for each of several running at once: a lone query is answered sooner, and
    concurrent ones keep the cores busy without threads fighting over them.
    """
    info = library.model_info()
    if info is None or not is_default_model(info.name):
        return None
    if threads:
        return load_embedder_for(info, threads=threads)
    return load_embedder_for(info, busy_threads=1)


def _card(image_id: int, path: str, digest: str) -> dict[str, Any]:
    return {
        "id": image_id,
        "path": path,
        "name": Path(path).name,
        "url": f"/images/{image_id}",
        "thumbnail_url": f"/api/images/{image_id}/thumbnail?v={digest[:16]}",
    }
