"""Indexing a folder from the web page, in a background thread, with visible progress.

One job at a time per server. The job is the same incremental indexer as
``lookalike index`` (it takes the library's writer lock, so it refuses to run
while a CLI run is writing, and the other way round), using the model the server
already loaded. Progress is what the indexer reports after each commit (about
every two seconds). Searches see new images as soon as they are committed. If the
server stops, the job stops with it; what was committed is kept and indexing the
same folder again finishes the rest. In a library with copy detection on, the job
then computes the new images' copy descriptors (``"phase": "copy descriptors"``).

A ``lookalike index`` run in another process is not a job of this server, but it
writes its progress beside the catalog (lookalike.indexer.progress): while it runs, the status
is its progress, marked ``"external": true``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from lookalike.indexer.errors import BadQuery, LibraryBusy, LookalikeError

log = logging.getLogger(__name__)


class IndexJobs:
    """Runs at most one indexing job at a time (see module docstring)."""

    def __init__(self, service) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"state": "idle"}

    def status(self) -> dict[str, Any]:
        from lookalike.indexer.progress import running_elsewhere

        with self._lock:
            doc = dict(self._status)
        if doc["state"] not in ("scanning", "running"):
            other = running_elsewhere(self.service.root)
            if other is not None:
                doc = {**other, "external": True}
        health = self.service.health()
        doc["library_images"] = health["images"]
        doc["content_version"] = health["content_version"]
        return doc

    def start(self, folder: str, labels_from_folders: bool = False) -> dict[str, Any]:
        if not isinstance(folder, str) or not folder.strip():
            raise BadQuery("name a folder on the server to index")
        path = Path(os.path.expanduser(folder.strip()))
        if not path.is_absolute():
            raise BadQuery(f"give the folder as an absolute path, not {folder!r}")
        if not path.is_dir():
            raise BadQuery(f"{path} is not a folder on the server")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise LibraryBusy("an indexing job is already running; wait for it to finish")
            self._status = {
                "state": "scanning",
                "folder": str(path),
                "labels_from_folders": bool(labels_from_folders),
                "done": 0,
                "total": None,
                "started": time.time(),
            }
            self._thread = threading.Thread(
                target=self._run, args=(str(path), bool(labels_from_folders)), daemon=True
            )
            self._thread.start()
            return dict(self._status)

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._status.update(state="running", done=done, total=total)

    def _run(self, folder: str, labels_from_folders: bool) -> None:
        from lookalike.indexer.batch import BatchIndexer, IndexOptions
        from lookalike.indexer.store.library import Library

        try:
            embedder = self.service.searcher.embedder
            options = IndexOptions(progress=False, labels_from_folders=labels_from_folders)
            with Library.create(self.service.root, embedder.info) as lib, lib.locked():
                summary = BatchIndexer(lib, embedder, options, self._progress).run([folder])
                copies = self._copy_descriptors(lib)
        except LookalikeError as e:
            self._finish("failed", error=str(e))
        except Exception as e:  # reported on the page and in the log, never lost
            log.exception("indexing job over %s failed", folder)
            self._finish("failed", error=f"internal error: {e}")
        else:
            doc = summary.as_dict()
            doc["skipped"] = doc["skipped"][:50]
            if copies is not None:
                doc["copy_descriptors"] = {"computed": copies.computed, "total": copies.total}
            self._finish("done", summary=doc)

    def _copy_descriptors(self, lib):
        """In a library with copy detection on, the descriptors of what the job added
        (with the copy model the server's searches use; none when it cannot load)."""
        from lookalike.indexer.store import copy_vectors

        if copy_vectors.recorded_model(lib.catalog) is None:
            return None
        found = self.service.searcher.copy_search()
        if found is None:
            return None
        with self._lock:
            self._status.update(phase="copy descriptors")
        return copy_vectors.build(lib, found[0], on_progress=self._progress)

    def _finish(self, state: str, **extra: Any) -> None:
        with self._lock:
            self._status.update(state=state, finished=time.time(), **extra)
