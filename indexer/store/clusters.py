"""Cluster proposals in the catalog: their tables' rows, read and written.

The tables (created by the catalog's third migration, see ``catalog.MIGRATIONS``)::

    clusters         id, status (proposed|accepted|merged|rejected|split|gone), name,
                     label (the class a group is more of), suggested_name, nearest_label,
                     nearest_label_similarity, cohesion, promise, rank, parent,
                     created, reviewed
    cluster_members  cluster_id, image_id, rep (representative rank or NULL)
    cluster_noise    image_id
    cluster_state    key, value (what the last clustering was computed from)

This is storage only: what goes in (re-clustering, review decisions) is
``lookalike.classifier.clustering``. A library last written before the migration,
opened read-only, has no such tables: it reads as having no clusters.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from lookalike.indexer.store.catalog import Catalog


class ClusterRow(NamedTuple):
    """One row of the clusters table."""

    id: int
    status: str  # proposed, accepted, merged, rejected, split or gone
    name: str | None  # the label a reviewer gave (accepted, merged)
    label: str | None  # the human label the group is more of; None: a new category
    suggested_name: str | None
    nearest_label: str | None
    nearest_label_similarity: float | None
    cohesion: float
    promise: float
    rank: int | None
    parent: int | None  # the cluster this one was split from
    created: float
    reviewed: float | None


class MemberRow(NamedTuple):
    image_id: int
    path: str
    rep: int | None  # representative rank (0 best), None: not a representative


class NewCluster(NamedTuple):
    """A proposal as re-clustering (or a split) writes it."""

    members: Sequence[int]  # image ids
    representatives: Sequence[int]  # image ids, best first
    label: str | None
    suggested_name: str | None
    nearest_label: str | None
    nearest_label_similarity: float | None
    cohesion: float
    promise: float


class ClusterStore:
    """The cluster tables of one catalog (see the module docstring)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @property
    def conn(self) -> sqlite3.Connection:
        return self.catalog.conn

    def exists(self) -> bool:
        """False for a library opened read-only that predates the cluster tables."""
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'clusters'"
        ).fetchone()
        return row is not None

    # -- reading ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What the last clustering was computed from ({} before the first)."""
        if not self.exists():
            return {}
        row = self.conn.execute("SELECT value FROM cluster_state WHERE key = 'state'").fetchone()
        return json.loads(row[0]) if row else {}

    def cluster(self, cluster_id: int) -> ClusterRow | None:
        if not self.exists():
            return None
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM clusters WHERE id = ?", (cluster_id,)
        ).fetchone()
        return ClusterRow(*row) if row else None

    def proposed(self) -> list[ClusterRow]:
        """The open proposals, in rank order."""
        if not self.exists():
            return []
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM clusters WHERE status = 'proposed' ORDER BY rank, id"
        )
        return [ClusterRow(*r) for r in rows]

    def members(self, cluster_id: int) -> list[MemberRow]:
        """The cluster's images, by path."""
        rows = self.conn.execute(
            "SELECT i.id, i.path, m.rep FROM cluster_members m JOIN images i ON i.id = m.image_id "
            "WHERE m.cluster_id = ? ORDER BY i.path",
            (cluster_id,),
        )
        return [MemberRow(*r) for r in rows]

    def children(self, parent: int) -> list[int]:
        """Ids of the clusters split from ``parent``, in id order."""
        rows = self.conn.execute("SELECT id FROM clusters WHERE parent = ? ORDER BY id", (parent,))
        return [r[0] for r in rows]

    def member_sets(self, status: str) -> dict[int, set[int]]:
        """Member ids of every cluster with ``status`` (empty sets included)."""
        if not self.exists():
            return {}
        rows = self.conn.execute(
            "SELECT c.id, m.image_id FROM clusters c "
            "LEFT JOIN cluster_members m ON m.cluster_id = c.id WHERE c.status = ?",
            (status,),
        )
        out: dict[int, set[int]] = {}
        for cid, image_id in rows:
            out.setdefault(cid, set())
            if image_id is not None:
                out[cid].add(image_id)
        return out

    def noise(self) -> list[tuple[int, str]]:
        """(id, path) of the images the last clustering left alone, by path."""
        if not self.exists():
            return []
        rows = self.conn.execute(
            "SELECT i.id, i.path FROM cluster_noise n JOIN images i ON i.id = n.image_id "
            "ORDER BY i.path"
        )
        return [(r[0], r[1]) for r in rows]

    # -- writing (each in the caller's transaction) -------------------------------------
    def write(
        self,
        conn: sqlite3.Connection,
        clusters: Sequence[NewCluster],
        reuse: Sequence[int | None],
        gone: Sequence[int],
        parent: int | None = None,
        noise: Sequence[int] | None = None,
    ) -> list[int]:
        """Store proposals (``reuse``: the old id each keeps, or None for a new one);
        ``gone`` clusters are dropped from the proposals. With ``parent``, the clusters
        are its split children and it becomes 'split'. Returns the clusters' ids."""
        now = time.time()
        out = []
        for rank, (c, cid) in enumerate(zip(clusters, reuse, strict=True)):
            values: tuple[object, ...] = (c.label, c.suggested_name, c.nearest_label)
            values += (c.nearest_label_similarity, c.cohesion, c.promise, rank)
            if cid is None:
                cid = conn.execute(
                    "INSERT INTO clusters (status, label, suggested_name, nearest_label, "
                    "nearest_label_similarity, cohesion, promise, rank, parent, created) "
                    "VALUES ('proposed', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, parent, now),
                ).lastrowid
                assert cid is not None, "an INSERT has a row id"
            else:
                conn.execute(
                    "UPDATE clusters SET label = ?, suggested_name = ?, nearest_label = ?, "
                    "nearest_label_similarity = ?, cohesion = ?, promise = ?, rank = ? "
                    "WHERE id = ?",
                    (*values, cid),
                )
                conn.execute("DELETE FROM cluster_members WHERE cluster_id = ?", (cid,))
            rep = {int(m): k for k, m in enumerate(c.representatives)}
            conn.executemany(
                "INSERT INTO cluster_members (cluster_id, image_id, rep) VALUES (?, ?, ?)",
                [(cid, int(m), rep.get(int(m))) for m in c.members],
            )
            out.append(cid)
        conn.executemany("UPDATE clusters SET status = 'gone' WHERE id = ?", [(g,) for g in gone])
        conn.executemany("DELETE FROM cluster_members WHERE cluster_id = ?", [(g,) for g in gone])
        if parent is not None:
            conn.execute(
                "UPDATE clusters SET status = 'split', reviewed = ? WHERE id = ?", (now, parent)
            )
        if noise is not None:
            conn.execute("DELETE FROM cluster_noise")
            conn.executemany("INSERT INTO cluster_noise VALUES (?)", [(int(i),) for i in noise])
        return out

    def set_state(self, conn: sqlite3.Connection, state: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO cluster_state (key, value) VALUES ('state', ?)",
            (json.dumps(state),),
        )

    def decide(
        self, conn: sqlite3.Connection, cluster_id: int, status: str, name: str | None = None
    ) -> None:
        """Record a review decision (accepted, merged, rejected) on the cluster."""
        if name is None:
            conn.execute(
                "UPDATE clusters SET status = ?, reviewed = ? WHERE id = ?",
                (status, time.time(), cluster_id),
            )
        else:
            conn.execute(
                "UPDATE clusters SET status = ?, name = ?, reviewed = ? WHERE id = ?",
                (status, name, time.time(), cluster_id),
            )

    def remove_members(self, conn: sqlite3.Connection, cluster_id: int, ids: Sequence[int]) -> None:
        conn.executemany(
            "DELETE FROM cluster_members WHERE cluster_id = ? AND image_id = ?",
            [(cluster_id, int(i)) for i in ids],
        )


_COLUMNS = ", ".join(ClusterRow._fields)
