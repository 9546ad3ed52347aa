"""The clusters page's data: a thin layer over ``lookalike.classifier.clustering.review``.

Reads go through the server's read-only library; re-clustering and review actions
through its one writer. The web speaks in image ids and cards; this layer builds
them, and serialises review actions within one server so two clicks on the same
card cannot race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lookalike.classifier.clustering import review
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.library import Library
from lookalike.webapp.services import LibraryService, NotFound


class ClusterReview:
    """Cluster proposals and review actions for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------
    def listing(self, refresh: bool = False) -> dict[str, Any]:
        """The open proposals, most promising first (re-clusters when the library changed)."""
        with self._lock:
            found = None if refresh else review.current_listing(self.service.library)
            if found is None:
                with self.service.writable() as library:
                    found = review.list_clusters(library, refresh=refresh)
        return self._page(found)

    def _page(self, listing: review.Listing) -> dict[str, Any]:
        reps = [m.id for c in listing.clusters for m in c.representatives]
        cards = self.service.cards(reps)
        return {
            "clusters": [self._cluster(c, cards) for c in listing.clusters],
            "noise": len(listing.noise),
            "labels": [row["label"] for row in self.service.label_counts()],
        }

    @staticmethod
    def _cluster(c: review.ClusterView, cards: dict[int, dict]) -> dict[str, Any]:
        return {
            "id": c.id,
            "size": c.size,
            "label": c.label,
            "cohesion": c.cohesion,
            "suggested_name": c.suggested_name,
            "nearest_label": c.nearest_label,
            "nearest_label_similarity": c.nearest_label_similarity,
            "status": "open",  # a listing holds the open proposals only
            "representatives": [cards[m.id] for m in c.representatives if m.id in cards],
            "members": [m.id for m in c.members],
        }

    # -- review actions -------------------------------------------------------------------
    def accept(self, cluster_id: int, name: Any, exclude: Any = None) -> dict[str, Any]:
        if not isinstance(name, str):
            raise BadQuery('send {"as": "name of the new class"}')
        ids = _id_list(exclude, "exclude")
        known = self.service.library.catalog.paths(ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFound("image", missing[0])
        with self._acting(cluster_id) as library:
            done = review.accept(library, cluster_id, name, ids)
        return _result(done.cluster, done.labelled)

    def merge(self, cluster_id: int, into: Any) -> dict[str, Any]:
        if not isinstance(into, str) or not into.strip():
            raise BadQuery('send {"into": "an existing label"}')
        with self._acting(cluster_id) as library:
            done = review.merge(library, cluster_id, into.strip())
        return _result(done.cluster, done.labelled)

    def reject(self, cluster_id: int) -> dict[str, Any]:
        with self._acting(cluster_id) as library:
            return _result(review.reject(library, cluster_id), 0)

    def split(self, cluster_id: int) -> dict[str, Any]:
        with self._acting(cluster_id) as library:
            review.split(library, cluster_id)
        return self.listing()

    @contextmanager
    def _acting(self, cluster_id: int) -> Iterator[Library]:
        """The writable library for one review action; an unknown cluster is a 404."""
        with self._lock, self.service.writable() as library:
            try:
                yield library
            except review.ClusterNotFound as e:
                raise NotFound("cluster", cluster_id, str(e)) from e


def _result(cluster: review.ClusterDetail, labelled: int) -> dict[str, Any]:
    return {"id": cluster.id, "status": cluster.status, "name": cluster.name, "labelled": labelled}


def _id_list(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise BadQuery(f"{name} must be a list of image ids")
    return value
