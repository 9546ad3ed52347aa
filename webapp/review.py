"""Routes for cluster review, tagging runs and the evaluation, over classifier/*.

``ReviewService`` is the thin layer between these routes and the classifier package:
clusters come from ``webapp.clusters`` (over ``classifier.clustering.review``); tagging
runs from ``lookalike.classifier.tagging.tagger.tag_library`` (as `lookalike tag`); the evaluation
from ``webapp.evaluation`` (over ``classifier.tagging.validation``, as `lookalike evaluate`).
When this version of Lookalike lacks a module the route answers 501 with what it
needs, and the page says so.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from lookalike.indexer.errors import BadQuery
from lookalike.webapp.clusters import ClusterReview
from lookalike.webapp.evaluation import EvaluationRunner
from lookalike.webapp.services import LibraryService, Unavailable

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__, url_prefix="/api")


def find(module: str, name: str):
    """classifier.<module>.<name>, or None when this version does not have it."""
    try:
        mod = importlib.import_module(f"lookalike.classifier.tagging.{module}")
    except ImportError:
        return None
    return getattr(mod, name, None)


class ReviewService:
    """Cluster review, tagging runs and evaluation for one library (module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self.clusters = ClusterReview(service)
        self.evaluations = EvaluationRunner(service)
        self._tag_lock = threading.Lock()

    def has_clusters(self) -> bool:
        return self.clusters.available()

    def has_tagging(self) -> bool:
        return find("tagger", "tag_library") is not None

    def has_cross_validation(self) -> bool:
        return self.evaluations.available()

    # -- tagging --------------------------------------------------------------------
    def tag(self, head: Any, min_confidence: Any) -> dict[str, Any]:
        """Tag every image without a human label (as `lookalike tag`); a summary."""
        tag_library = find("tagger", "tag_library")
        if tag_library is None:
            raise Unavailable("tagging", "classifier/tagging/tagger.py tag_library()")
        if not isinstance(head, str):
            raise BadQuery('head must be a name such as "knn"')
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)):
            raise BadQuery("min_confidence must be a number between 0 and 1")
        with self._tag_lock:  # one run at a time; each replaces the previous run's tags
            run = tag_library(str(self.service.root), head=head, min_confidence=min_confidence)
        return _summary(run.meta)

    def last_tagging(self) -> dict[str, Any] | None:
        last_run = find("tagger", "last_run")
        meta = last_run(self.service.library.catalog) if last_run else None
        return _summary(meta) if meta else None

    # -- evaluation ---------------------------------------------------------------------
    def evaluation(self) -> dict[str, Any]:
        """The cross-validation's state and figures, and the last tagging run's own."""
        return {
            "cross_validation": self.evaluations.status(),
            "tag_run": self.tag_run_figures(),
        }

    def tag_run_figures(self) -> dict[str, Any] | None:
        """The last tagging run, measured on labels (and classes) it hid from itself."""
        last_run = find("tagger", "last_run")
        meta = last_run(self.service.library.catalog) if last_run else None
        if meta is None:
            return None
        held_out = meta.get("validation") or {}
        return {
            "head": meta.get("head"),
            "finished": meta.get("at"),
            "labelled": meta.get("labelled"),
            "classes": meta.get("classes"),
            "figures": {
                "known images tagged right": held_out.get("known_accuracy"),
                "new-class images left unknown": held_out.get("novel_unknown"),
                "calibration error": held_out.get("calibration_error"),
                "images tagged": meta.get("tagged"),
                "images unknown": meta.get("unknown"),
            },
        }


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("head", "tagged", "unknown", "labelled", "classes", "seconds", "min_confidence", "at")
    return {k: meta.get(k) for k in keys}


def _review() -> ReviewService:
    return current_app.extensions["lookalike.review"]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise BadQuery("send a JSON object with Content-Type: application/json")
    return body


def _board() -> ClusterReview:
    return _review().clusters


@bp.get("/clusters")
def clusters():
    return jsonify(_board().listing())


@bp.post("/clusters")
def recluster():
    return jsonify(_board().listing(refresh=True))


@bp.post("/clusters/<int:cluster_id>/accept")
def accept(cluster_id: int):
    body = _body()
    return jsonify(_board().accept(cluster_id, body.get("as"), body.get("exclude")))


@bp.post("/clusters/<int:cluster_id>/merge")
def merge(cluster_id: int):
    return jsonify(_board().merge(cluster_id, _body().get("into")))


@bp.post("/clusters/<int:cluster_id>/split")
def split(cluster_id: int):
    return jsonify(_board().split(cluster_id))


@bp.post("/clusters/<int:cluster_id>/reject")
def reject(cluster_id: int):
    return jsonify(_board().reject(cluster_id))


@bp.get("/tag")
def last_tagging():
    return jsonify({"last_run": _review().last_tagging()})


@bp.post("/tag")
def tag():
    body = _body()
    return jsonify(_review().tag(body.get("head", "knn"), body.get("min_confidence", 0.0)))


@bp.get("/evaluation")
def evaluation():
    return jsonify(_review().evaluation())


@bp.post("/evaluation")
def run_evaluation():
    body = _body()
    status = _review().evaluations.start(body.get("folds", 5), body.get("heads"))
    return jsonify(status), 202
