"""Cluster review: proposals kept in the catalog, and the actions that turn them into labels.

The functions here are what the CLI (``lookalike clusters``) and the web app call:
:func:`list_clusters`, :func:`show`, :func:`accept`, :func:`merge`, :func:`split`,
:func:`reject`. Each takes the library directory (or an open ``Library``) and returns
JSON-able dicts; bad input raises a :class:`ReviewError` and changes nothing.

The proposals' tables and re-clustering are :mod:`lookalike.classifier.clustering.store`; the
errors, :mod:`lookalike.classifier.clustering.errors` (importable from here too).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from lookalike.classifier.clustering.store import (
    SCHEMA,
    _described,
    _doc,
    _is_fresh,
    _labels,
    _listing,
    _members,
    _row,
    _store,
    _stored,
    recluster,
)

__all__ = [
    "DEFAULT_MIN_SIZE",
    "BadName",
    "CannotSplit",
    "ClusterNotFound",
    "ClusterReviewed",
    "NotAMember",
    "NothingToCluster",
    "ReviewError",
    "UnknownLabel",
    "accept",
    "list_clusters",
    "merge",
    "recluster",
    "reject",
    "show",
    "split",
]

DEFAULT_MIN_SIZE = 5
REVIEWED = ("accepted", "merged", "rejected", "split")


# -- the functions the CLI and the web app call ----------------------------------------
def list_clusters(
    library: Any = None, min_size: int | None = None, *, refresh: bool = False
) -> dict[str, Any]:
    """The proposals, most promising first: ``{"clusters": [...], "noise": [paths]}``.

    Re-clusters first when the library's images or labels (or ``min_size``) changed
    since the last clustering, or when ``refresh``.
    """
    if min_size is not None and min_size < 2:
        raise ReviewError(f"--min-size must be at least 2, not {min_size}")
    root = _root(library)
    with _open(root) as lib:
        if not refresh and _is_fresh(lib.catalog, min_size):
            return _listing(lib.catalog)
    with _open(root, write=True) as lib:
        recluster(lib.catalog, min_size or _stored(lib.catalog).get("min_size", DEFAULT_MIN_SIZE))
        return _listing(lib.catalog)


def show(library: Any, cluster_id: int) -> dict[str, Any]:
    """One cluster in full, whatever its status (gone clusters raise ClusterNotFound)."""
    with _open(_root(library)) as lib:
        row = _row(lib.catalog, cluster_id, need_proposed=False)
        doc = _doc(lib.catalog, row)
        children = lib.catalog.conn.execute(
            "SELECT id FROM clusters WHERE parent = ? ORDER BY id", (cluster_id,)
        ).fetchall()
    keys = ("status", "name", "label", "parent", "created", "reviewed")
    return doc | {k: row[k] for k in keys} | {"children": [c[0] for c in children]}


def accept(library: Any, cluster_id: int, name: str, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Label the cluster's members ``name`` (a new class), except ``exclude`` (paths)."""
    name = _check_name(name)
    with _open(_root(library), write=True) as lib:
        cat = lib.catalog
        _row(cat, cluster_id)
        clash = [k for k in _labels(cat) if k.casefold() == name.casefold()]
        if clash:
            raise BadName(
                name,
                f"the label {clash[0]!r} already exists; to add these images to it use "
                f"`lookalike clusters merge {cluster_id} --into {clash[0]}`",
            )
        members = _members(cat, cluster_id)
        dropped = _excluded(members, exclude, cluster_id)
        labelled = _label(cat, cluster_id, "accepted", name, members, dropped)
        return show(lib, cluster_id) | {"labelled": labelled}


def merge(library: Any, cluster_id: int, label: str) -> dict[str, Any]:
    """Label the cluster's members with an existing label ``label``."""
    with _open(_root(library), write=True) as lib:
        cat = lib.catalog
        row = _row(cat, cluster_id)
        known = _labels(cat)
        if label not in known:
            raise UnknownLabel(label, known)
        members = _members(cat, cluster_id)
        labelled = _label(cat, row["id"], "merged", label, members, set())
        return show(lib, cluster_id) | {"labelled": labelled}


def reject(library: Any, cluster_id: int) -> dict[str, Any]:
    """Not a class: the members are never proposed together again."""
    with _open(_root(library), write=True) as lib:
        cat = lib.catalog
        _row(cat, cluster_id)
        with cat.transaction() as conn:
            conn.execute(
                "UPDATE clusters SET status = 'rejected', reviewed = ? WHERE id = ?",
                (time.time(), cluster_id),
            )
        return show(lib, cluster_id)


def split(library: Any, cluster_id: int) -> list[dict[str, Any]]:
    """Re-cluster one cluster finer (two parts); returns the new clusters."""
    from lookalike.classifier.clustering.matching import two_parts

    with _open(_root(library), write=True) as lib:
        cat = lib.catalog
        row = _row(cat, cluster_id)
        ids, vectors = cat.vectors(sorted(_members(cat, cluster_id)))
        parts = two_parts(vectors)
        if parts is None:
            raise CannotSplit(cluster_id, len(ids))
        groups = [(set(ids[p].tolist()), row["label"]) for p in parts]
        children = _store(cat, _described(cat, groups), {}, parent=cluster_id)
        return [show(lib, c) for c in children]


# -- writing ------------------------------------------------------------------------------
def _check_name(name: str) -> str:
    clean = (name or "").strip()
    if not clean:
        raise BadName(name or "", "the name is empty")
    if any(ord(ch) < 32 for ch in clean) or len(clean) > 200:
        raise BadName(clean, "use one line of at most 200 characters")
    return clean


def _excluded(members: dict[int, str], exclude: Sequence[str], cluster_id: int) -> set[int]:
    by_path = {p: i for i, p in members.items()}
    dropped = set()
    for given in exclude:
        image_id = by_path.get(given, by_path.get(os.path.abspath(given)))
        if image_id is None:
            raise NotAMember(given, cluster_id)
        dropped.add(image_id)
    if members and len(dropped) == len(members):
        raise ReviewError(f"--exclude leaves no image of cluster {cluster_id} to label")
    return dropped


def _label(cat, cluster_id, status, name, members, dropped) -> int:
    """Write human labels (origin 'review') for members without one; returns how many."""
    wanted = [i for i in members if i not in dropped]
    with cat.transaction() as conn:  # read and write under one lock: no label overwritten
        have = {r[0] for r in conn.execute("SELECT image_id FROM labels")}
        todo = [i for i in wanted if i not in have]
        if not todo:
            raise ReviewError(f"every image of cluster {cluster_id} already has a human label")
        cat.set_labels(conn, [(i, name) for i in todo], origin="review")
        conn.executemany(
            "DELETE FROM cluster_members WHERE cluster_id = ? AND image_id = ?",
            [(cluster_id, i) for i in dropped],
        )
        conn.execute(
            "UPDATE clusters SET status = ?, name = ?, reviewed = ? WHERE id = ?",
            (status, name, time.time(), cluster_id),
        )
    return len(todo)


# -- opening --------------------------------------------------------------------------------
def _root(library: Any) -> Path | None:
    """A directory (str or Path), an open Library (its root), or None (the default)."""
    if library is None or isinstance(library, (str, os.PathLike)):
        return Path(library) if library is not None else None
    return Path(library.root)


class _open:
    """Open the library (read-only unless ``write``); writing creates the tables."""

    def __init__(self, root: Path | None, write: bool = False) -> None:
        from lookalike.indexer.store.library import Library

        self.lib = Library.open(root, readonly=not write)
        if write:
            self.lib.catalog.conn.executescript(SCHEMA)

    def __enter__(self):
        return self.lib

    def __exit__(self, *exc) -> None:
        self.lib.close()
