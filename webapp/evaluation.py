"""The evaluation page's data: cross-validation of every tagging head, run in the background.

``lookalike.classifier.tagging.validation.evaluate_library`` (what `lookalike evaluate` runs) takes
from seconds to minutes, so a request starts it in a thread and the page polls.
The last result stays in memory with its HTML report (``lookalike.classifier.tagging.report``);
after a restart the figures come from the summary the evaluation stored in the
catalog, without the report.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from lookalike.indexer.errors import BadQuery, LibraryBusy, LookalikeError
from lookalike.webapp.services import LibraryService, Unavailable

log = logging.getLogger(__name__)

HEADS = ("knn", "linear", "svm", "mlp")


def _module(name: str):
    try:
        return __import__(f"lookalike.classifier.tagging.{name}", fromlist=["_"])
    except ImportError:
        return None


class EvaluationRunner:
    """One evaluation at a time for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"state": "none"}
        self.report_html: str | None = None

    @staticmethod
    def available() -> bool:
        module = _module("validation")
        return module is not None and hasattr(module, "evaluate_library")

    def start(self, folds: Any = 5, heads: Any = None) -> dict[str, Any]:
        if not self.available():
            raise Unavailable(
                "the evaluation", "classifier/tagging/validation.py evaluate_library()"
            )
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 50:
            raise BadQuery("folds must be a whole number from 2 to 50")
        heads = list(HEADS) if heads is None else heads
        if not isinstance(heads, list) or not heads or any(h not in HEADS for h in heads):
            raise BadQuery(f"heads must be a list drawn from {', '.join(HEADS)}")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise LibraryBusy("an evaluation is already running; wait for it to finish")
            self._status = {"state": "running", "progress": "starting", "started": time.time()}
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
            stored = self.service.library.catalog.get_meta("evaluation")
            if stored:
                doc = {"state": "done", "stored": True} | _figures(json.loads(stored))
        doc["report_url"] = "/evaluation/report" if self.report_html else None
        return doc

    def _progress(self, head: str) -> None:
        with self._lock:
            self._status["progress"] = f"evaluating {head}"

    def _run(self, folds: int, heads: list[str]) -> None:
        from lookalike.classifier.tagging.validation import evaluate_library

        try:
            result = evaluate_library(
                str(self.service.root), heads=heads, folds=folds, progress=self._progress
            )
            html = self._report(result)
        except LookalikeError as e:
            self._finish({"state": "failed", "error": str(e)})
            return
        except Exception as e:  # shown on the page and logged, never lost
            log.exception("evaluation failed")
            self._finish({"state": "failed", "error": f"internal error: {e}"})
            return
        self.report_html = html
        self._finish({"state": "done"} | _figures(result))

    def _report(self, result: dict) -> str | None:
        report = _module("report")
        if report is None or not hasattr(report, "render_html"):
            return None
        return report.render_html(result)

    def _finish(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._status = doc | {"finished": time.time()}


def _figures(result: dict) -> dict[str, Any]:
    """The headline figures per head, from a full result or the stored summary."""
    heads = []
    for name, r in result.get("heads", {}).items():
        open_set = r.get("open_set", {})
        heads.append(
            {
                "head": name,
                "figures": {
                    "accuracy": r.get("accuracy"),
                    "macro-F1": r.get("macro_f1"),
                    "AUROC known vs new": open_set.get("auroc"),
                    "known images tagged right": open_set.get("known_accuracy"),
                    "new-class images left unknown": open_set.get("novel_unknown"),
                    "calibration error": open_set.get("calibration_error"),
                },
            }
        )
    return {
        "heads": heads,
        "best_head": result.get("best_head"),
        "labelled": result.get("labels"),
        "classes": len(result["classes"]) if "classes" in result else None,
        "folds": result.get("folds"),
        "evaluated_at": result.get("at"),
    }
