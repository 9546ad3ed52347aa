"""The evaluation page's data: cross-validation of every tagging head, run in the background.

``lookalike.classifier.tagging.validation.evaluate_library`` (what `lookalike evaluate`
runs) takes from seconds to minutes, so a request starts it in a thread and the page
polls. It reads through the server's read-only library; only its summary goes through
the writer, so labelling goes on meanwhile. The last result stays in memory with its
HTML report (``lookalike.classifier.tagging.report``); after a restart the figures
come from the summary the evaluation stored in the catalog, without the report.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from lookalike.classifier.tagging.report import render_html
from lookalike.classifier.tagging.tagger import HEADS
from lookalike.classifier.tagging.validation import (
    StoredEvaluation,
    evaluate_library,
    store_summary,
    stored_summary,
)
from lookalike.indexer.errors import BadQuery, LibraryBusy, LookalikeError
from lookalike.webapp.services import INTERNAL_ERROR, LibraryService

log = logging.getLogger(__name__)


class EvaluationRunner:
    """One evaluation at a time for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"state": "none"}
        self._running: dict[str, str] = {}  # head -> its step, while the evaluation runs
        self.report_html: str | None = None

    def start(self, folds: Any = 5, heads: Any = None) -> dict[str, Any]:
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 50:
            raise BadQuery("folds must be a whole number from 2 to 50")
        heads = list(HEADS) if heads is None else heads
        if not isinstance(heads, list) or not heads or any(h not in HEADS for h in heads):
            raise BadQuery(f"heads must be a list drawn from {', '.join(HEADS)}")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise LibraryBusy("an evaluation is already running; wait for it to finish")
            self._status = {"state": "running", "progress": "starting", "started": time.time()}
            self._running = {}
            self._thread = threading.Thread(target=self._run, args=(folds, heads), daemon=True)
            self._thread.start()
        return self.status()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        with self._lock:
            doc = dict(self._status)
        if doc["state"] == "none":
            stored = stored_summary(self.service.library)
            if stored is not None:
                doc = {"state": "done", "stored": True} | _figures(stored, at=stored.at)
        doc["report_url"] = "/evaluation/report" if self.report_html else None
        return doc

    def _progress(self, head: str, step: str) -> None:
        # Heads run two at a time (validation.evaluate_vectors): the page shows each
        # running head's step.
        with self._lock:
            if step == "done":
                self._running.pop(head, None)
            else:
                self._running[head] = step
            if self._running:
                steps = self._running.items()
                self._status["progress"] = "; ".join(f"{h}: {s}" for h, s in steps)

    def _run(self, folds: int, heads: list[str]) -> None:
        try:
            result = evaluate_library(
                self.service.library, heads=heads, folds=folds, progress=self._progress
            )
            with self.service.writable() as library:
                summary = store_summary(library, result)
            html = render_html(result)
        except LookalikeError as e:
            self._finish({"state": "failed", "error": str(e)})
            return
        except Exception:  # logged in full; the page gets a short message, never the text
            log.exception("evaluation failed")
            self._finish({"state": "failed", "error": INTERNAL_ERROR})
            return
        self.report_html = html
        figures = _figures(summary, labelled=result.labels, classes=len(result.classes))
        self._finish({"state": "done"} | figures)

    def _finish(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._status = doc | {"finished": time.time()}


def _figures(
    summary: StoredEvaluation,
    labelled: int | None = None,
    classes: int | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """The headline figures per head (labelled images and classes: a fresh run's only)."""
    heads = []
    for name, r in summary.heads.items():
        heads.append(
            {
                "head": name,
                "figures": {
                    "accuracy": r.accuracy,
                    "macro-F1": r.macro_f1,
                    "AUROC known vs new": r.open_set.auroc,
                    "known images tagged right": r.open_set.known_accuracy,
                    "new-class images left unknown": r.open_set.novel_unknown,
                    "calibration error": r.open_set.calibration_error,
                },
            }
        )
    return {
        "heads": heads,
        "best_head": summary.best_head,
        "labelled": labelled,
        "classes": classes,
        "folds": summary.folds,
        "evaluated_at": at,
    }
