"""Bounding boxes in the catalog: a labelled region of an image, and its crop's vector.

A box is in the image's pixels as indexed (EXIF-rotated, full size; x1 and y1
exclusive), the coordinates a region query takes (``lookalike search --box``,
lookalike.search.localize). It records the image's content hash when it was drawn:
once the image's content changes, the box is *stale* (its region may show something
else) and it is neither searched nor learnt from until a person moves it again
(lookalike.classifier.boxes). ``origin`` is 'human' (drawn or accepted by a person)
or 'suggested' (the main-object pre-annotation, with no label until accepted).

All the box SQL is here; callers pass the connection of their transaction for writes.
Readers of a catalog older than the boxes table (opened read-only, so not migrated)
see no boxes: nobody can have drawn one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from lookalike.indexer.models.protocol import FeatureVector
from lookalike.indexer.store.catalog import MIGRATIONS, Catalog

# The migration that created the boxes table: its 1-based position in MIGRATIONS.
BOXES_VERSION = next(n for n, m in enumerate(MIGRATIONS, 1) if "CREATE TABLE boxes" in m)
DISMISSED_VERSION = next(
    n for n, m in enumerate(MIGRATIONS, 1) if "CREATE TABLE dismissed_suggestions" in m
)
ORIGINS = ("human", "suggested")

PixelBox = tuple[int, int, int, int]


class BoxRow(NamedTuple):
    """A stored box, with whether it is stale and has a vector of ``model``."""

    id: int
    image_id: int
    box: PixelBox  # x0, y0, x1, y1 in the image's pixels as indexed
    label: str | None  # None: a suggested box not yet accepted
    origin: str  # human or suggested
    hash: str  # the image's content hash when the box was drawn
    stale: bool  # the image's content changed since
    model: str | None  # the key of the model its vector came from; None: no vector
    created: float
    updated: float


class ExportBox(NamedTuple):
    """A human box with its image, for COCO and YOLO exports."""

    id: int
    image_id: int
    path: str
    width: int
    height: int
    box: PixelBox
    label: str


_COLUMNS = (
    "b.id, b.image_id, b.x0, b.y0, b.x1, b.y1, b.label, b.origin, b.hash, "
    "b.hash != i.hash AS stale, b.model, b.created, b.updated"
)


def has_boxes(catalog: Catalog) -> bool:
    """False for a read-only catalog older than the boxes table."""
    return catalog.conn.execute("PRAGMA user_version").fetchone()[0] >= BOXES_VERSION


def _row(r: sqlite3.Row) -> BoxRow:
    return BoxRow(
        r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8], bool(r[9]), r[10], r[11], r[12]
    )


def boxes_of(catalog: Catalog, image_id: int) -> list[BoxRow]:
    """The boxes of one image, oldest first."""
    if not has_boxes(catalog):
        return []
    rows = catalog.conn.execute(
        f"SELECT {_COLUMNS} FROM boxes b JOIN images i ON i.id = b.image_id "
        "WHERE b.image_id = ? ORDER BY b.id",
        (image_id,),
    )
    return [_row(r) for r in rows]


def box(catalog: Catalog, box_id: int) -> BoxRow | None:
    if not has_boxes(catalog):
        return None
    r = catalog.conn.execute(
        f"SELECT {_COLUMNS} FROM boxes b JOIN images i ON i.id = b.image_id WHERE b.id = ?",
        (box_id,),
    ).fetchone()
    return _row(r) if r else None


def box_counts(catalog: Catalog) -> tuple[int, int]:
    """(human boxes, of them stale) in the library."""
    if not has_boxes(catalog):
        return 0, 0
    r = catalog.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(b.hash != i.hash), 0) FROM boxes b "
        "JOIN images i ON i.id = b.image_id WHERE b.origin = 'human'"
    ).fetchone()
    return int(r[0]), int(r[1])


def box_label_names(catalog: Catalog) -> list[str]:
    """The distinct labels of boxes, in the order first used."""
    if not has_boxes(catalog):
        return []
    rows = catalog.conn.execute(
        "SELECT label FROM boxes WHERE label IS NOT NULL GROUP BY label "
        "ORDER BY MIN(created), label"
    )
    return [r[0] for r in rows]


def insert_box(
    conn: sqlite3.Connection,
    image_id: int,
    region: PixelBox,
    label: str | None,
    origin: str,
    digest: str,
    vector: FeatureVector | None,
    model: str | None,
) -> int:
    """Add a box (in the caller's transaction); returns its id."""
    now = time.time()
    row = conn.execute(
        "INSERT INTO boxes (image_id, x0, y0, x1, y1, label, origin, hash, vector, model, "
        "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (int(image_id), *(int(v) for v in region), label, origin, digest, _blob(vector), model)
        + (now, now),
    ).fetchone()
    return int(row[0])


def update_box(
    conn: sqlite3.Connection,
    box_id: int,
    region: PixelBox,
    label: str | None,
    origin: str,
    digest: str,
    vector: FeatureVector | None,
    model: str | None,
) -> None:
    """Replace a box's region, label, origin, hash and vector (its id and creation stay)."""
    conn.execute(
        "UPDATE boxes SET x0 = ?, y0 = ?, x1 = ?, y1 = ?, label = ?, origin = ?, hash = ?, "
        "vector = ?, model = ?, updated = ? WHERE id = ?",
        (*(int(v) for v in region), label, origin, digest, _blob(vector), model)
        + (time.time(), int(box_id)),
    )


def delete_boxes(conn: sqlite3.Connection, box_ids: Iterable[int]) -> int:
    """Delete boxes by id; returns how many were there."""
    return sum(conn.execute("DELETE FROM boxes WHERE id = ?", (int(i),)).rowcount for i in box_ids)


def dismiss_suggestion(conn: sqlite3.Connection, image_id: int, digest: str) -> None:
    """Remember that a person deleted the image's suggested box (made on content ``digest``)."""
    conn.execute(
        "INSERT OR REPLACE INTO dismissed_suggestions (image_id, hash, at) VALUES (?, ?, ?)",
        (int(image_id), digest, time.time()),
    )


def suggestion_dismissed(catalog: Catalog, image_id: int) -> bool:
    """Whether a person deleted the suggested box of the image's current content."""
    if catalog.conn.execute("PRAGMA user_version").fetchone()[0] < DISMISSED_VERSION:
        return False
    return (
        catalog.conn.execute(
            "SELECT 1 FROM dismissed_suggestions d JOIN images i ON i.id = d.image_id "
            "WHERE d.image_id = ? AND d.hash = i.hash",
            (int(image_id),),
        ).fetchone()
        is not None
    )


def delete_suggested(conn: sqlite3.Connection, image_id: int) -> None:
    conn.execute("DELETE FROM boxes WHERE image_id = ? AND origin = 'suggested'", (image_id,))


def labelled_box_vectors(catalog: Catalog, model: str) -> tuple[list[str], FeatureVector]:
    """(labels, vectors) of the human boxes that are current: a label, the image's
    content as drawn on, and a vector of ``model`` (the key of the library's model)."""
    if not has_boxes(catalog):
        return [], np.zeros((0, 0), dtype=np.float32)
    rows = catalog.conn.execute(
        "SELECT b.label, b.vector FROM boxes b JOIN images i ON i.id = b.image_id "
        "WHERE b.origin = 'human' AND b.label IS NOT NULL AND b.hash = i.hash "
        "AND b.vector IS NOT NULL AND b.model = ? ORDER BY b.id",
        (model,),
    ).fetchall()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
    return [r[0] for r in rows], mat.reshape(len(rows), -1).copy()


def box_vector(catalog: Catalog, box_id: int) -> FeatureVector | None:
    row = catalog.conn.execute("SELECT vector FROM boxes WHERE id = ?", (box_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return np.frombuffer(row[0], dtype=np.float32).copy()


def export_boxes(catalog: Catalog) -> list[ExportBox]:
    """Every current human box with its image, by image path then box id."""
    if not has_boxes(catalog):
        return []
    rows = catalog.conn.execute(
        "SELECT b.id, i.id, i.path, i.width, i.height, b.x0, b.y0, b.x1, b.y1, b.label "
        "FROM boxes b JOIN images i ON i.id = b.image_id WHERE b.origin = 'human' "
        "AND b.label IS NOT NULL AND b.hash = i.hash ORDER BY i.path, b.id"
    )
    return [ExportBox(r[0], r[1], r[2], r[3], r[4], (r[5], r[6], r[7], r[8]), r[9]) for r in rows]


def _blob(vector: FeatureVector | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
