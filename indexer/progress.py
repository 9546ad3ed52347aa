"""The progress of an indexing run: for other processes to show (the web app), and on
the terminal (``progress_bar``).

A run writes ``LIBRARY/index-progress.json`` when it starts and after each commit
(about every two seconds), and removes it when it ends, whichever way. A reader
trusts the file only while its writer is alive and it is fresh: a run killed with
SIGKILL leaves a file behind that names a dead process, and a frozen one stops
updating it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

FILE_NAME = "index-progress.json"
STALE_S = 120.0  # no update for this long: the run is not making progress


class RunProgress:
    """Written by the one indexing run of a library (it holds the writer lock)."""

    def __init__(self, root: str | Path, roots: list[str]) -> None:
        self.path = Path(root) / FILE_NAME
        self.doc: dict[str, Any] = {
            "pid": os.getpid(),
            "folders": [str(r) for r in roots],
            "state": "scanning",
            "done": 0,
            "total": None,
            "started": time.time(),
        }

    def update(self, done: int | None = None, total: int | None = None) -> None:
        if total is not None:
            self.doc.update(state="running", done=done or 0, total=total)
        self.doc["updated"] = time.time()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.doc))
            os.replace(tmp, self.path)
        except OSError:  # a read-only or full disk must not stop the indexing itself
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def running_elsewhere(root: str | Path, now: float | None = None) -> dict[str, Any] | None:
    """The progress of an indexing run in another live process, or None."""
    path = Path(root) / FILE_NAME
    try:
        doc = json.loads(path.read_text())
        pid, updated = int(doc["pid"]), float(doc.get("updated", doc["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or (now or time.time()) - updated > STALE_S or not _alive(pid):
        return None
    return doc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class _NullBar:
    n = 0

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, desc: str = "indexing"):
    """A terminal progress bar of ``total`` files (``.update(k)``, ``.n``, ``.close()``);
    a silent counter when not ``enabled`` or there is nothing to do."""
    if not enabled or total == 0:
        return _NullBar()
    from tqdm import tqdm  # only when a bar is shown: keeps `lookalike --help` quick

    return tqdm(total=total, unit="img", desc=desc, smoothing=0.1, dynamic_ncols=True)
