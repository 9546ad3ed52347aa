"""Cluster review: the proposals as a reviewer sees them, and the actions that turn them
into labels.

The functions here are what the CLI (``lookalike clusters``) and the web app call:
:func:`current_listing` and :func:`list_clusters`, :func:`show`, :func:`accept`,
:func:`merge`, :func:`split`, :func:`reject`. Each takes an open ``Library`` (writable
for the actions and for re-clustering) and returns typed results whose ``to_json()``
is the CLI's JSON; bad input raises a :class:`ReviewError` and changes nothing.

Re-clustering and the proposals' bookkeeping are
:mod:`lookalike.classifier.clustering.proposals`; the errors,
:mod:`lookalike.classifier.clustering.errors` (importable from here too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from lookalike.classifier.clustering.errors import (
    BadName,
    CannotSplit,
    ClusterNotFound,
    ClusterReviewed,
    NotAMember,
    NothingToCluster,
    ReviewError,
    UnknownLabel,
)
from lookalike.classifier.clustering.matching import natural_parts
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.classifier.clustering.proposals import (
    describe_groups,
    is_fresh,
    recluster,
    store_proposals,
    stored_min_size,
)
from lookalike.indexer.label_text import match_key
from lookalike.indexer.store.catalog import MAX_ID
from lookalike.indexer.store.clusters import ClusterRow, ClusterStore, MemberRow
from lookalike.indexer.store.library import Library

__all__ = [
    "DEFAULT_MIN_SIZE",
    "MERGE_SIMILARITY",
    "BadName",
    "CannotSplit",
    "ClusterDetail",
    "ClusterNotFound",
    "ClusterReviewed",
    "ClusterView",
    "Decision",
    "Listing",
    "Member",
    "NotAMember",
    "NothingToCluster",
    "ReviewError",
    "UnknownLabel",
    "accept",
    "current_listing",
    "list_clusters",
    "members_at",
    "merge",
    "reject",
    "same_labels",
    "show",
    "split",
    "stored_listing",
    "stored_min_size",
]

DEFAULT_MIN_SIZE = 5
# Above this similarity to its nearest label a group is "more of" it: Merge is the
# primary action (the level at which discovery folds a new group into a label).
MERGE_SIMILARITY: float = ClusterParams().fold_similarity or 0.8


class Member(NamedTuple):
    id: int
    path: str


@dataclass(frozen=True)
class ClusterView:
    """A proposal as a reviewer sees it (figures rounded to 4 decimals)."""

    id: int
    label: str | None  # the human label the group is more of; None: a new category
    members: list[Member]  # by path
    representatives: list[Member]  # up to 6 members nearest the centroid, best first
    cohesion: float  # mean pairwise cosine similarity of the members
    suggested_name: str | None  # the members' most likely ImageNet class
    nearest_label: str | None
    nearest_label_similarity: float | None

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def kind(self) -> str:
        """'new' (a category nobody labelled) or 'label' (more of ``nearest_label``)."""
        return "new" if self.label is None else "label"

    def to_json(self) -> dict[str, Any]:
        """As ``lookalike clusters --json`` lists it (paths, not ids)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "size": self.size,
            "members": [m.path for m in self.members],
            "representatives": [m.path for m in self.representatives],
            "cohesion": self.cohesion,
            "suggested_name": self.suggested_name,
            "nearest_label": self.nearest_label,
            "nearest_label_similarity": self.nearest_label_similarity,
        }


@dataclass(frozen=True)
class ClusterDetail(ClusterView):
    """A cluster with its review state, whatever its status."""

    status: str  # proposed, accepted, merged, rejected or split
    name: str | None  # the label it was accepted or merged as
    parent: int | None  # the cluster it was split from
    created: float
    reviewed: float | None
    children: list[int]  # the clusters it was split into

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {
            "status": self.status,
            "name": self.name,
            "label": self.label,
            "parent": self.parent,
            "created": self.created,
            "reviewed": self.reviewed,
            "children": self.children,
        }


class Listing(NamedTuple):
    clusters: list[ClusterView]  # new categories first, most promising first
    noise: list[Member]  # images the clustering left alone, by path
    min_size: int = DEFAULT_MIN_SIZE  # the --min-size these proposals were made with

    def to_json(self) -> dict[str, Any]:
        return {
            "clusters": [c.to_json() for c in self.clusters],
            "noise": [m.path for m in self.noise],
        }


class Decision(NamedTuple):
    """The outcome of accept or merge."""

    cluster: ClusterDetail
    labelled: int  # images that got the label

    def to_json(self) -> dict[str, Any]:
        return self.cluster.to_json() | {"labelled": self.labelled}


# -- reading ------------------------------------------------------------------------------
def current_listing(library: Library, min_size: int | None = None) -> Listing | None:
    """The stored proposals when they are up to date (any open library), else None:
    then :func:`list_clusters` re-clusters. ``min_size`` None is the default (5), never
    the one an earlier run was given."""
    _check_min_size(min_size)
    return _listing(library) if is_fresh(library, min_size or DEFAULT_MIN_SIZE) else None


def stored_listing(library: Library) -> tuple[Listing, bool]:
    """(the stored proposals, whether they are up to date): reads only, never clusters."""
    state_size = stored_min_size(library)
    fresh = state_size is not None and is_fresh(library, state_size)
    return _listing(library), fresh


def list_clusters(
    library: Library, min_size: int | None = None, *, refresh: bool = False
) -> Listing:
    """The proposals, most promising first (a writable library).

    Re-clusters first when the library's images or labels (or ``min_size``, default 5)
    changed since the last clustering, or when ``refresh``, as the library's one writer:
    LibraryBusy while an index run (or a tag run) holds the writer lock, so proposals
    are never made from a library half indexed, nor replaced under a person reviewing
    them while a run goes on.
    """
    _check_min_size(min_size)
    size = min_size or DEFAULT_MIN_SIZE
    if refresh or not is_fresh(library, size):
        with library.locked():
            recluster(library, size)
    return _listing(library)


def show(library: Library, cluster_id: int) -> ClusterDetail:
    """One cluster in full, whatever its status (gone clusters raise ClusterNotFound)."""
    store = ClusterStore(library.catalog)
    row = _row(store, cluster_id, need_proposed=False)
    view = _view(row, store.members(cluster_id))
    return ClusterDetail(
        **vars(view),
        status=row.status,
        name=row.name,
        parent=row.parent,
        created=row.created,
        reviewed=row.reviewed,
        children=store.children(cluster_id),
    )


def members_at(library: Library, cluster_id: int, paths: Iterable[str]) -> list[int]:
    """The ids of the cluster's members at ``paths`` (as given, or made absolute);
    NotAMember for a path that is not one."""
    store = ClusterStore(library.catalog)
    _row(store, cluster_id, need_proposed=False)  # a gone cluster says so
    by_path = {m.path: m.image_id for m in store.members(cluster_id)}
    out = []
    for given in paths:
        image_id = by_path.get(given, by_path.get(os.path.abspath(given)))
        if image_id is None:
            raise NotAMember(given, cluster_id)
        out.append(image_id)
    return out


def _listing(library: Library) -> Listing:
    store = ClusterStore(library.catalog)
    views = [_view(row, store.members(row.id)) for row in store.proposed()]
    noise = [Member(*m) for m in store.noise()]
    size = stored_min_size(library) or DEFAULT_MIN_SIZE
    return Listing([v for v in views if v.size > 0], noise, size)


def _view(row: ClusterRow, members: list[MemberRow]) -> ClusterView:
    reps = sorted((m.rep, m.path, m.image_id) for m in members if m.rep is not None)
    sim = row.nearest_label_similarity
    return ClusterView(
        id=row.id,
        label=row.label,
        members=[Member(m.image_id, m.path) for m in members],
        representatives=[Member(i, p) for _rank, p, i in reps],
        cohesion=round(row.cohesion, 4),
        suggested_name=row.suggested_name,
        nearest_label=row.nearest_label,
        nearest_label_similarity=None if sim is None else round(sim, 4),
    )


def _row(store: ClusterStore, cluster_id: int, need_proposed: bool = True) -> ClusterRow:
    row = store.cluster(cluster_id) if 0 <= cluster_id <= MAX_ID else None
    if row is None or row.status == "gone":
        raise ClusterNotFound(cluster_id, row.status if row else None)
    if need_proposed and row.status != "proposed":
        raise ClusterReviewed(cluster_id, row.status, row.name)
    return row


def _check_min_size(min_size: int | None) -> None:
    if min_size is not None and min_size < 2:
        raise ReviewError(f"--min-size must be at least 2, not {min_size}")


# -- the review actions (a writable library) ----------------------------------------------
def accept(library: Library, cluster_id: int, name: str, exclude: Sequence[int] = ()) -> Decision:
    """Label the cluster's members ``name`` (a new class), except the ``exclude`` ids."""
    name = _check_name(name)
    store = ClusterStore(library.catalog)
    _row(store, cluster_id)
    clash = same_labels(library, name)
    if clash:
        raise BadName(
            name,
            f"the label {clash[0]!r} already exists; to add these images to it use "
            f"`lookalike clusters merge {cluster_id} --into {clash[0]}`",
        )
    members = {m.image_id: m.path for m in store.members(cluster_id)}
    dropped = _excluded(library, members, exclude, cluster_id)
    labelled = _label(library, cluster_id, "accepted", name, list(members), dropped)
    return Decision(show(library, cluster_id), labelled)


def merge(library: Library, cluster_id: int, label: str, exclude: Sequence[int] = ()) -> Decision:
    """Label the cluster's members with an existing label ``label``, except ``exclude``."""
    store = ClusterStore(library.catalog)
    _row(store, cluster_id)
    same = same_labels(library, label)
    if not same:
        raise UnknownLabel(label)
    label = label if label in same else same[0]
    members = {m.image_id: m.path for m in store.members(cluster_id)}
    dropped = _excluded(library, members, exclude, cluster_id)
    labelled = _label(library, cluster_id, "merged", label, list(members), dropped)
    return Decision(show(library, cluster_id), labelled)


def same_labels(library: Library, name: str) -> list[str]:
    """The library's labels that ``name`` names (labels match case-insensitively, as
    everywhere: label_text), sorted; none when it is a new label."""
    key = match_key((name or "").strip())
    return [k for k in library.catalog.label_names() if match_key(k) == key]


def reject(library: Library, cluster_id: int) -> ClusterDetail:
    """Not a class: the members are never proposed together again."""
    store = ClusterStore(library.catalog)
    _row(store, cluster_id)
    with library.catalog.transaction() as conn:
        store.decide(conn, cluster_id, "rejected")
    return show(library, cluster_id)


def split(library: Library, cluster_id: int) -> list[ClusterDetail]:
    """Re-cluster one cluster into its natural parts (two or more, none below the
    listing's minimum size); returns the new clusters."""
    store = ClusterStore(library.catalog)
    row = _row(store, cluster_id)
    member_ids = sorted(m.image_id for m in store.members(cluster_id))
    ids, vectors = library.catalog.vectors(member_ids)
    min_size = stored_min_size(library) or DEFAULT_MIN_SIZE
    parts = natural_parts(vectors, min_size)
    if parts is None:
        raise CannotSplit(cluster_id, len(ids), min_size)
    groups = [(set(ids[p].tolist()), row.label) for p in parts]
    children = store_proposals(library, describe_groups(library, groups), {}, parent=cluster_id)
    return [show(library, c) for c in children]


def _check_name(name: str) -> str:
    clean = (name or "").strip()
    if not clean:
        raise BadName(name or "", "the name is empty")
    if any(ord(ch) < 32 for ch in clean) or len(clean) > 200:
        raise BadName(clean, "use one line of at most 200 characters")
    return clean


def _excluded(
    library: Library, members: dict[int, str], exclude: Sequence[int], cluster_id: int
) -> set[int]:
    dropped = {int(i) for i in exclude}
    strangers = sorted(dropped - set(members))
    if strangers:
        path = library.catalog.paths(strangers[:1]).get(strangers[0])
        raise NotAMember(path or f"image id {strangers[0]}", cluster_id)
    if members and len(dropped) == len(members):
        raise ReviewError(f"--exclude leaves no image of cluster {cluster_id} to label")
    return dropped


def _label(
    library: Library,
    cluster_id: int,
    status: str,
    name: str,
    members: list[int],
    dropped: set[int],
) -> int:
    """Write human labels (origin 'review') for members without one; returns how many."""
    cat = library.catalog
    wanted = [i for i in members if i not in dropped]
    if not members:
        raise ReviewError(
            f"cluster {cluster_id} has no images left: they were removed from the library"
        )
    with cat.transaction() as conn:  # read and write under one lock: no label overwritten
        have = cat.labels_of(wanted)
        todo = [i for i in wanted if i not in have]
        if not todo:
            raise ReviewError(f"every image of cluster {cluster_id} already has a human label")
        cat.set_labels(conn, [(i, name) for i in todo], origin="review")
        ClusterStore(cat).remove_members(conn, cluster_id, sorted(dropped))
        ClusterStore(cat).decide(conn, cluster_id, status, name)
    return len(todo)
