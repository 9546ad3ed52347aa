"""Routes for cluster review, tagging runs and the evaluation, over lookalike.classifier.

``ReviewService`` is the thin layer between these routes and the classifier package:
clusters come from ``webapp.clusters`` (over ``classifier.clustering.review``); tagging
runs from ``lookalike.classifier.tagging.tagger`` (as `lookalike tag`); the evaluation
from ``webapp.evaluation`` (over ``classifier.tagging.validation``, as `lookalike evaluate`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from lookalike.classifier.tagging.tagger import (
    DEFAULT_CLUSTERS,
    HEADS,
    TagRunInfo,
    compute_tags,
    last_run,
    save_tags,
)
from lookalike.classifier.tagging.validation import choose_head, tagging_head
from lookalike.indexer.errors import BadQuery
from lookalike.webapp.clusters import ClusterReview
from lookalike.webapp.evaluation import EvaluationRunner
from lookalike.webapp.inputs import json_body
from lookalike.webapp.services import LibraryService

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__, url_prefix="/api")


class ReviewService:
    """Cluster review, tagging runs and evaluation for one library (module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self.clusters = ClusterReview(service)
        self.evaluations = EvaluationRunner(service)
        self._tag_lock = threading.Lock()

    # -- tagging --------------------------------------------------------------------
    def tag(
        self, head: Any, min_confidence: Any, clusters: Any = DEFAULT_CLUSTERS
    ) -> dict[str, Any]:
        """Tag every image without a human label (as `lookalike tag`); a summary.
        No head named: the one chosen on the evaluation page (or proto); ``clusters``:
        the library's clusters decide where they speak (tagging/cluster_vote.py)."""
        if not isinstance(clusters, bool):
            raise BadQuery("clusters must be true or false")
        if head is None:
            head = tagging_head(self.service.library)
        if not isinstance(head, str):
            raise BadQuery('head must be a name such as "proto"')
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)):
            raise BadQuery("min_confidence must be a number between 0 and 1")
        if not 0.0 <= min_confidence <= 1.0:  # checked here to name the API's field
            raise BadQuery(f"min_confidence must be between 0 and 1, not {min_confidence}")
        with self._tag_lock:  # one run at a time; each replaces the previous run's tags
            # Computed on the read-only library: the writer is held only to store it.
            run = compute_tags(
                self.service.library, head=head, min_confidence=min_confidence, clusters=clusters
            )
            with self.service.writable() as library:
                save_tags(library, run)
        return _summary(run.info)

    def choose_head(self, head: Any) -> dict[str, Any]:
        if not isinstance(head, str) or head not in HEADS:
            raise BadQuery(f"head must be one of {', '.join(HEADS)}")
        with self.service.writable() as library:
            choose_head(library, head)
        return {"tag_head": head}

    def last_tagging(self) -> dict[str, Any] | None:
        info = last_run(self.service.library)
        return _summary(info) if info else None

    # -- evaluation ---------------------------------------------------------------------
    def evaluation(self) -> dict[str, Any]:
        """The cross-validation's state and figures, and the last tagging run's own."""
        return {
            "cross_validation": self.evaluations.status(),
            "tag_head": tagging_head(self.service.library),
            "tag_run": self.tag_run_figures(),
        }

    def tag_run_figures(self) -> dict[str, Any] | None:
        """The last tagging run, measured on labels (and classes) it hid from itself."""
        info = last_run(self.service.library)
        if info is None:
            return None
        held_out = info.held_out
        return {
            "head": info.head,
            "clusters": info.clusters,
            "replayed": info.replay is not None,
            "finished": info.at,
            "labelled": info.labelled,
            "classes": info.classes,
            "figures": {
                "known images tagged right": held_out.known_accuracy if held_out else None,
                "new-class images left unknown": held_out.novel_unknown if held_out else None,
                "calibration error": held_out.calibration_error if held_out else None,
                "images tagged": info.tagged,
                "images unknown": info.unknown,
            },
        }


def _summary(info: TagRunInfo) -> dict[str, Any]:
    return {
        "head": info.head,
        "tagged": info.tagged,
        "unknown": info.unknown,
        "labelled": info.labelled,
        "classes": info.classes,
        "seconds": info.seconds,
        "min_confidence": info.min_confidence,
        "clusters": info.clusters,
        "at": info.at,
    }


def _review() -> ReviewService:
    return current_app.extensions["lookalike.review"]


def _body() -> dict[str, Any]:
    return json_body(empty_ok=True)


def _board() -> ClusterReview:
    return _review().clusters


@bp.get("/clusters")
def clusters():
    return jsonify(_board().listing())


@bp.post("/clusters")
def recluster():
    return jsonify(_board().recluster(_body().get("min_size")))


@bp.get("/clusters/<int:cluster_id>/members")
def cluster_members(cluster_id: int):
    args = request.args
    return jsonify(_board().members(cluster_id, args.get("offset"), args.get("limit")))


@bp.post("/clusters/<int:cluster_id>/accept")
def accept(cluster_id: int):
    body = _body()
    return jsonify(_board().accept(cluster_id, body.get("as"), body.get("exclude")))


@bp.post("/clusters/<int:cluster_id>/merge")
def merge(cluster_id: int):
    body = _body()
    return jsonify(_board().merge(cluster_id, body.get("into"), body.get("exclude")))


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
    return jsonify(
        _review().tag(
            body.get("head"),
            body.get("min_confidence", 0.0),
            body.get("clusters", DEFAULT_CLUSTERS),
        )
    )


@bp.put("/tag-head")
def choose_tag_head():
    return jsonify(_review().choose_head(_body().get("head")))


@bp.get("/evaluation")
def evaluation():
    return jsonify(_review().evaluation())


@bp.post("/evaluation")
def run_evaluation():
    body = _body()
    status = _review().evaluations.start(body.get("folds", 5), body.get("heads"))
    return jsonify(status), 202
