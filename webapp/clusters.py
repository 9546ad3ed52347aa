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
from lookalike.indexer.store.catalog import MAX_ID
from lookalike.indexer.store.library import Library
from lookalike.webapp.errors import web_message
from lookalike.webapp.inputs import whole_number
from lookalike.webapp.services import LibraryService, NotFound

MEMBERS_LIMIT_MAX = 500  # members on one page of GET /api/clusters/<id>/members


class ClusterReview:
    """Cluster proposals and review actions for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------
    def listing(self) -> dict[str, Any]:
        """The stored proposals, most promising first: a read, never a re-clustering
        (``stale`` says the library changed since; ``clustered`` False: never clustered)."""
        found, fresh = review.stored_listing(self.service.library)
        clustered = review.stored_min_size(self.service.library) is not None
        if not clustered:
            self._check_something_to_cluster()
        return self._page(found) | {"stale": clustered and not fresh, "clustered": clustered}

    def _check_something_to_cluster(self) -> None:
        """NothingToCluster (a 4xx the page shows as its empty state) for a library
        without images, or with every image labelled."""
        catalog = self.service.catalog
        images = catalog.count()
        if not images or not catalog.unlabelled_ids():
            raise review.NothingToCluster(images)

    def recluster(self, min_size: Any = None) -> dict[str, Any]:
        """Cluster the unlabelled images now (POST) and answer the new listing."""
        if min_size is not None and (
            not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 2
        ):
            raise BadQuery("min_size must be a whole number of at least 2")
        with self._lock, self.service.writable() as library:
            found = review.list_clusters(library, min_size, refresh=True)
        return self._page(found) | {"stale": False, "clustered": True}

    def members(self, cluster_id: int, offset: Any, limit: Any) -> dict[str, Any]:
        """One page of a cluster's members as cards (every member can be seen)."""
        start = whole_number(offset, "offset", 0, MAX_ID, 0)
        size = whole_number(limit, "limit", 1, MEMBERS_LIMIT_MAX, 48)
        try:
            detail = review.show(self.service.library, cluster_id)
        except review.ClusterNotFound as e:
            raise NotFound("cluster", cluster_id, web_message(e)) from e
        ids = [m.id for m in detail.members]
        page = ids[start : start + size]
        cards = self.service.cards(page)
        return {
            "id": cluster_id,
            "total": len(ids),
            "offset": start,
            "limit": size,
            "members": [cards[i] for i in page if i in cards],
        }

    def _page(self, listing: review.Listing) -> dict[str, Any]:
        reps = [m.id for c in listing.clusters for m in c.representatives]
        cards = self.service.cards(reps)
        return {
            "clusters": [self._cluster(c, cards) for c in listing.clusters],
            "noise": len(listing.noise),
            "labels": [row["label"] for row in self.service.label_counts()],
            "min_size": listing.min_size,
            "merge_similarity": review.MERGE_SIMILARITY,
        }

    @staticmethod
    def _cluster(c: review.ClusterView, cards: dict[int, dict]) -> dict[str, Any]:
        return {
            "id": c.id,
            "kind": c.kind,
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
        ids = self._known_ids(exclude)
        with self._acting(cluster_id) as library:
            try:
                done = review.accept(library, cluster_id, name, ids)
            except review.BadName as e:
                clash = review.same_labels(library, e.name)
                if not clash:
                    raise
                # Worded for the page, whose button for this is "Merge into <label>".
                raise BadQuery(
                    f"the label {clash[0]!r} already exists; to add these images to it, "
                    f"use “Merge into {clash[0]}”"
                ) from e
        return _result(done.cluster, done.labelled)

    def merge(self, cluster_id: int, into: Any, exclude: Any = None) -> dict[str, Any]:
        if not isinstance(into, str) or not into.strip():
            raise BadQuery('send {"into": "an existing label"}')
        ids = self._known_ids(exclude)
        with self._acting(cluster_id) as library:
            done = review.merge(library, cluster_id, into.strip(), ids)
        return _result(done.cluster, done.labelled)

    def _known_ids(self, exclude: Any) -> list[int]:
        """The ``exclude`` ids (a list of image ids); 404 for one not in the library."""
        ids = _id_list(exclude, "exclude")
        known = self.service.library.catalog.paths(ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFound("image", missing[0])
        return ids

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
                raise NotFound("cluster", cluster_id, web_message(e)) from e


def _result(cluster: review.ClusterDetail, labelled: int) -> dict[str, Any]:
    return {"id": cluster.id, "status": cluster.status, "name": cluster.name, "labelled": labelled}


def _id_list(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise BadQuery(f"{name} must be a list of image ids")
    return value
