"""The clusters page's data: a thin layer over ``lookalike.classifier.clustering.review``.

The review module keeps the proposals and the decisions in the catalog and speaks
in file paths (as the CLI does); the web speaks in image ids and cards. This layer
translates, and serialises review actions within one server so two clicks on the
same card cannot race.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

from lookalike.indexer.errors import BadQuery
from lookalike.webapp.services import LibraryService, NotFound, Unavailable


def review_module() -> ModuleType | None:
    try:
        return importlib.import_module("lookalike.classifier.clustering.review")
    except ImportError:
        return None


class ClusterReview:
    """Cluster proposals and review actions for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        return review_module() is not None

    def _module(self) -> ModuleType:
        module = review_module()
        if module is None:
            raise Unavailable("cluster review", "classifier/clustering/review.py")
        return module

    # -- reading ------------------------------------------------------------------
    def listing(self, refresh: bool = False) -> dict[str, Any]:
        """The open proposals, most promising first (re-clusters when the library changed)."""
        # The review module takes the library as a str (a Path's .root means "/" to it).
        module = self._module()
        with self._lock:
            doc = module.list_clusters(str(self.service.root), refresh=refresh)
        return self._page(doc)

    def _page(self, doc: dict[str, Any]) -> dict[str, Any]:
        paths = {p for c in doc["clusters"] for p in c["members"]}
        ids = self.service.ids_of_paths(paths)
        reps = [ids[p] for c in doc["clusters"] for p in c["representatives"] if p in ids]
        cards = self.service.cards(reps)
        return {
            "clusters": [self._cluster(c, ids, cards) for c in doc["clusters"]],
            "noise": len(doc.get("noise", [])),
            "labels": [row["label"] for row in self.service.label_counts()],
        }

    @staticmethod
    def _cluster(c: dict[str, Any], ids: dict[str, int], cards: dict[int, dict]) -> dict[str, Any]:
        reps = [cards[ids[p]] for p in c["representatives"] if ids.get(p) in cards]
        return {
            "id": c["id"],
            "size": c["size"],
            "label": c.get("label"),
            "cohesion": c["cohesion"],
            "suggested_name": c["suggested_name"],
            "nearest_label": c["nearest_label"],
            "nearest_label_similarity": c["nearest_label_similarity"],
            "status": "open" if c.get("status", "proposed") == "proposed" else c["status"],
            "representatives": reps,
            "members": [ids[p] for p in c["members"] if p in ids],
        }

    # -- review actions -------------------------------------------------------------------
    def _act(self, name: str, cluster_id: int, *args: Any) -> Any:
        module = self._module()
        with self._lock:
            try:
                return getattr(module, name)(str(self.service.root), cluster_id, *args)
            except module.ClusterNotFound as e:
                raise NotFound("cluster", cluster_id, str(e)) from e

    def accept(self, cluster_id: int, name: Any, exclude: Any = None) -> dict[str, Any]:
        if not isinstance(name, str):
            raise BadQuery('send {"as": "name of the new class"}')
        paths = self.service.paths_of_ids(_id_list(exclude, "exclude"))
        doc = self._act("accept", cluster_id, name, paths)
        return self._result(doc, "accepted")

    def merge(self, cluster_id: int, into: Any) -> dict[str, Any]:
        if not isinstance(into, str) or not into.strip():
            raise BadQuery('send {"into": "an existing label"}')
        return self._result(self._act("merge", cluster_id, into.strip()), "merged")

    def reject(self, cluster_id: int) -> dict[str, Any]:
        return self._result(self._act("reject", cluster_id), "rejected")

    def split(self, cluster_id: int) -> dict[str, Any]:
        self._act("split", cluster_id)
        return self.listing()

    def _result(self, doc: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "status": doc.get("status", status),
            "name": doc.get("name"),
            "labelled": doc.get("labelled", 0),
        }


def _id_list(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise BadQuery(f"{name} must be a list of image ids")
    return value
