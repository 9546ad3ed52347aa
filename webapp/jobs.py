"""Indexing a folder from the web page, in a background thread, with visible progress.

One job at a time per server. The job is the same update as ``lookalike index``
(lookalike.indexer.pipeline.update_library: it takes the library's writer lock, so
it refuses to run while a CLI run is writing, and the other way round), using the
models the server already loaded. Progress is what the indexer reports after each commit (about
every two seconds). Searches see new images as soon as they are committed. If the
server stops, the job stops with it; what was committed is kept and indexing the
same folder again finishes the rest. In a library with copy detection on, the job
then computes the new images' copy descriptors (``"phase": "copy descriptors"``), with
the copy model of the server's searches (none when it could not load). The summary is
``lookalike index --json``'s document, its lists of skipped files cut to 50.

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

from lookalike.indexer.batch import IndexOptions
from lookalike.indexer.errors import BadQuery, LibraryBusy, LookalikeError
from lookalike.indexer.pipeline import check_outside, update_library
from lookalike.indexer.progress import running_elsewhere
from lookalike.webapp.services import INTERNAL_ERROR, LibraryService

log = logging.getLogger(__name__)

SHOW_SKIPPED = 50  # skipped files listed in a job's summary (the page shows a few)

# The status before any job: every field docs/api.md lists, none of a job yet.
IDLE: dict[str, Any] = {
    "state": "idle",
    "folder": None,
    "done": 0,
    "total": 0,
    "summary": None,
    "error": None,
}


class IndexJobs:
    """Runs at most one indexing job at a time (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = dict(IDLE)

    def status(self) -> dict[str, Any]:
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
        check_outside(self.service.root, [path])  # PathsInLibrary: a 400 saying why
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise LibraryBusy("an indexing job is already running; wait for it to finish")
            self._status = {
                **IDLE,
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

    def _copy_progress(self, done: int, total: int) -> None:
        with self._lock:
            self._status.update(phase="copy descriptors")
        self._progress(done, total)

    def _run(self, folder: str, labels_from_folders: bool) -> None:
        searcher = self.service.searcher
        try:
            found = searcher.copy_search()
            summary = update_library(
                self.service.root,
                [folder],
                embedder=searcher.embedder,
                copies=found[0] if found is not None else None,
                copies_optional=True,
                options=IndexOptions(progress=False, labels_from_folders=labels_from_folders),
                on_progress=self._progress,
                on_copy_progress=self._copy_progress,
            )
        except LookalikeError as e:
            self._finish("failed", error=str(e))
        except Exception:  # logged in full; the page gets a short message, never the text
            log.exception("indexing job over %s failed", folder)
            self._finish("failed", error=INTERNAL_ERROR)
        else:
            doc = summary.as_dict()
            doc["skipped"] = doc["skipped"][:SHOW_SKIPPED]
            if "copy_descriptors" in doc:
                copies = doc["copy_descriptors"]
                copies["skipped"] = copies["skipped"][:SHOW_SKIPPED]
            self._finish("done", summary=doc)

    def _finish(self, state: str, **extra: Any) -> None:
        with self._lock:
            self._status.update(state=state, finished=time.time(), **extra)
