"""Cluster proposals in the catalog: their tables, re-clustering into them, reading them.

Persistence (``SCHEMA``, created on the first write through
:mod:`lookalike.classifier.clustering.review`)::

    clusters         id, status (proposed|accepted|merged|rejected|split|gone), name,
                     label (the class a group is more of), suggested_name, nearest_label,
                     nearest_label_similarity, cohesion, promise, rank, parent,
                     created, reviewed
    cluster_members  cluster_id, image_id, rep (representative rank or NULL)
    cluster_noise    image_id

    cluster_state    key, value (what the last clustering was computed from)

A listing re-clusters only when the library's images or human labels (or --min-size)
changed since the last clustering. Re-clustering keeps what was decided: a new cluster
whose members overlap a current proposal's by Jaccard >= 0.5 keeps that proposal's id;
rejected clusters' members are kept apart; a split is re-applied to the cluster that
matches the split one; accepted and merged clusters are labels now.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from lookalike.classifier.clustering.errors import (
    ClusterNotFound,
    ClusterReviewed,
    NothingToCluster,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    name TEXT,
    label TEXT,
    suggested_name TEXT,
    nearest_label TEXT,
    nearest_label_similarity REAL,
    cohesion REAL NOT NULL,
    promise REAL NOT NULL,
    rank INTEGER,
    parent INTEGER REFERENCES clusters (id),
    created REAL NOT NULL,
    reviewed REAL
);
CREATE INDEX IF NOT EXISTS clusters_status ON clusters (status);
CREATE TABLE IF NOT EXISTS cluster_members (
    cluster_id INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    rep INTEGER,
    PRIMARY KEY (cluster_id, image_id)
);
CREATE INDEX IF NOT EXISTS cluster_members_image ON cluster_members (image_id);
CREATE TABLE IF NOT EXISTS cluster_noise (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS cluster_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Part of the fingerprint: a change of algorithm re-clusters stored libraries.
ALGORITHM = "graph-average-linkage-1"


# -- re-clustering ------------------------------------------------------------------------
def recluster(cat, min_size: int) -> None:
    """Cluster every image without a human label and store the proposals (see module doc)."""
    from lookalike.classifier.clustering.discovery import ClusterParams, cluster_vectors
    from lookalike.classifier.clustering.matching import partition_like

    ids, vectors = cat.vectors()
    labels = dict(cat.conn.execute("SELECT image_id, label FROM labels").fetchall())
    labelled = np.array([i in labels for i in ids.tolist()], dtype=bool)
    if not len(ids) or labelled.all():
        raise NothingToCluster(len(ids))
    uid = ids[~labelled]
    pos = {int(i): k for k, i in enumerate(uid)}
    apart = [
        np.array([pos[m] for m in members if m in pos], dtype=np.int64)
        for members in _decided(cat, "rejected").values()
    ]
    result = cluster_vectors(
        vectors[~labelled],
        vectors[labelled],
        [labels[i] for i in ids[labelled].tolist()],
        ClusterParams(min_size=min_size),
        apart,
    )
    groups = [(set(uid[c.members].tolist()), c.label) for c in result.clusters]
    # Re-apply splits: a group like a split cluster is divided as its children were.
    for parent, members in _decided(cat, "split").items():
        children = _children(cat, parent)
        for k, (group, label) in enumerate(groups):
            if not children or _jaccard(group, members) < 0.5:
                continue
            gid, gvec = cat.vectors(sorted(group))
            kids = [cat.vectors(sorted(c))[1] for c in children]
            parts = partition_like(gid, gvec, children, kids)
            groups[k : k + 1] = [(set(p.tolist()), label) for p in parts]
            break
    old = {cid: m for cid, m in _decided(cat, "proposed").items()}
    described = _described(cat, groups, known=(ids, vectors))
    _store(cat, described, old, noise=uid[result.noise].tolist())
    with cat.transaction() as conn:
        state = {"fingerprint": _fingerprint(cat, min_size), "min_size": min_size}
        conn.execute(
            "INSERT OR REPLACE INTO cluster_state (key, value) VALUES ('state', ?)",
            (json.dumps(state),),
        )


def _described(cat, groups: list[tuple[set[int], str | None]], known=None):
    """(member ids, representative ids, Cluster, suggested name) per group, best first.

    ``known``: (sorted ids, their vectors) already read, to avoid reading them again.
    """
    from lookalike.classifier.clustering.discovery import describe

    ids = np.array(sorted(set().union(*[g for g, _l in groups])) if groups else [], np.int64)
    lab_rows = cat.conn.execute("SELECT image_id, label FROM labels").fetchall()
    lab_wanted = np.array(sorted(r[0] for r in lab_rows), dtype=np.int64)
    if known is None:
        known = cat.vectors(np.union1d(ids, lab_wanted))
    found, vectors = _subset(known, ids)
    lab_ids, lab_vecs = _subset(known, lab_wanted)
    pos = {int(i): k for k, i in enumerate(found)}
    label_of = dict(lab_rows)
    index_groups = [(np.array([pos[m] for m in g if m in pos]), lab) for g, lab in groups]
    index_groups = [(g, lab) for g, lab in index_groups if len(g)]
    clusters = describe(vectors, lab_vecs, [label_of[int(i)] for i in lab_ids], index_groups)
    names = _suggested_names(cat, [found[c.members] for c in clusters])
    return [
        (found[c.members], found[c.representatives], c, n)
        for c, n in zip(clusters, names, strict=True)
    ]


def _subset(known, wanted: np.ndarray):
    """The rows of ``known`` = (ids, vectors) for the ``wanted`` ids present."""
    ids, vectors = known
    if len(ids) > 1 and (np.diff(ids) < 0).any():
        order = np.argsort(ids)
        ids, vectors = ids[order], vectors[order]
    at = np.clip(np.searchsorted(ids, wanted), 0, max(len(ids) - 1, 0))
    hit = (ids[at] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    return wanted[hit], vectors[at[hit]]


def _suggested_names(cat, groups: list[np.ndarray]) -> list[str | None]:
    """The ImageNet class with the most summed score over each group's members."""
    wanted = {int(i) for g in groups for i in g}
    top = {}
    for image_id, text in cat.conn.execute("SELECT image_id, top FROM predictions"):
        if image_id in wanted:
            top[image_id] = json.loads(text)
    names = []
    for g in groups:
        score: dict[str, float] = {}
        for i in g:
            for name, s in top.get(int(i), ()):
                score[name] = score.get(name, 0.0) + s
        names.append(max(score, key=lambda k: (score[k], k)) if score else None)
    return names


def _store(cat, described, old: dict[int, set[int]], parent=None, noise=None) -> list[int]:
    """Write clusters (reusing old ids by overlap); the rest of ``old`` is gone.

    With ``parent``, the clusters are its split children and it becomes 'split' in the
    same transaction.
    """
    from lookalike.classifier.clustering.matching import match_ids

    now = time.time()
    reuse = match_ids(old, [set(m.tolist()) for m, _r, _c, _n in described])
    out = []
    with cat.transaction() as conn:
        for rank, ((members, reps, c, name), cid) in enumerate(zip(described, reuse, strict=True)):
            values: tuple[object, ...] = (c.label, name, c.nearest_label)
            values += (c.nearest_label_similarity, c.cohesion, c.promise, rank)
            if cid is None:
                cid = conn.execute(
                    "INSERT INTO clusters (status, label, suggested_name, nearest_label, "
                    "nearest_label_similarity, cohesion, promise, rank, parent, created) "
                    "VALUES ('proposed', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, parent, now),
                ).lastrowid
            else:
                conn.execute(
                    "UPDATE clusters SET label = ?, suggested_name = ?, nearest_label = ?, "
                    "nearest_label_similarity = ?, cohesion = ?, promise = ?, rank = ? "
                    "WHERE id = ?",
                    (*values, cid),
                )
                conn.execute("DELETE FROM cluster_members WHERE cluster_id = ?", (cid,))
            rep = {int(m): k for k, m in enumerate(reps)}
            conn.executemany(
                "INSERT INTO cluster_members (cluster_id, image_id, rep) VALUES (?, ?, ?)",
                [(cid, int(m), rep.get(int(m))) for m in members],
            )
            out.append(cid)
        gone = [cid for cid in old if cid not in set(out)]
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


def _decided(cat, status: str) -> dict[int, set[int]]:
    """Member ids of every cluster with ``status`` (empty sets included)."""
    rows = cat.conn.execute(
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


def _children(cat, parent: int) -> list[set[int]]:
    kids = cat.conn.execute("SELECT id FROM clusters WHERE parent = ? ORDER BY id", (parent,))
    members = [_members(cat, k[0]).keys() for k in kids.fetchall()]
    return [set(m) for m in members if m]


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / max(len(a | b), 1)


def _fingerprint(cat, min_size: int) -> str:
    h = hashlib.sha1(f"{ALGORITHM}|{min_size}|{cat.content_version()}|".encode())
    for image_id, label in cat.conn.execute("SELECT image_id, label FROM labels ORDER BY 1"):
        h.update(f"{image_id}\t{label}\n".encode())
    return h.hexdigest()


def _stored(cat) -> dict[str, Any]:
    if not _has_tables(cat):
        return {}
    row = cat.conn.execute("SELECT value FROM cluster_state WHERE key = 'state'").fetchone()
    return json.loads(row[0]) if row else {}


def _is_fresh(cat, min_size: int | None) -> bool:
    state = _stored(cat)
    if not state:
        return False
    size = min_size or state["min_size"]
    return size == state["min_size"] and _fingerprint(cat, size) == state["fingerprint"]


# -- reading ------------------------------------------------------------------------------
def _listing(cat) -> dict[str, Any]:
    rows = cat.conn.execute(
        "SELECT * FROM clusters WHERE status = 'proposed' ORDER BY rank, id"
    ).fetchall()
    clusters = [d for d in (_doc(cat, r) for r in rows) if d["size"] > 0]
    noise = cat.conn.execute(
        "SELECT i.path FROM cluster_noise n JOIN images i ON i.id = n.image_id ORDER BY i.path"
    ).fetchall()
    return {"clusters": clusters, "noise": [r[0] for r in noise]}


def _doc(cat, row) -> dict[str, Any]:
    members = cat.conn.execute(
        "SELECT i.path, m.rep FROM cluster_members m JOIN images i ON i.id = m.image_id "
        "WHERE m.cluster_id = ? ORDER BY i.path",
        (row["id"],),
    ).fetchall()
    reps = sorted((r[1], r[0]) for r in members if r[1] is not None)
    sim = row["nearest_label_similarity"]
    return {
        "id": row["id"],
        "size": len(members),
        "members": [r[0] for r in members],
        "representatives": [p for _rank, p in reps],
        "cohesion": round(row["cohesion"], 4),
        "suggested_name": row["suggested_name"],
        "nearest_label": row["nearest_label"],
        "nearest_label_similarity": None if sim is None else round(sim, 4),
    }


def _row(cat, cluster_id: int, need_proposed: bool = True):
    row = None
    if _has_tables(cat):
        row = cat.conn.execute("SELECT * FROM clusters WHERE id = ?", (cluster_id,)).fetchone()
    if row is None or row["status"] == "gone":
        raise ClusterNotFound(cluster_id, row["status"] if row else None)
    if need_proposed and row["status"] != "proposed":
        raise ClusterReviewed(cluster_id, row["status"], row["name"])
    return row


def _members(cat, cluster_id: int) -> dict[int, str]:
    rows = cat.conn.execute(
        "SELECT i.id, i.path FROM cluster_members m JOIN images i ON i.id = m.image_id "
        "WHERE m.cluster_id = ?",
        (cluster_id,),
    )
    return {r[0]: r[1] for r in rows}


def _labels(cat) -> list[str]:
    return [r[0] for r in cat.conn.execute("SELECT DISTINCT label FROM labels ORDER BY label")]


def _has_tables(cat) -> bool:
    return bool(
        cat.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'clusters'"
        ).fetchone()
    )
