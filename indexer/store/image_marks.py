"""What a person decided about images: hidden, kept, or taken out of the library.

* Hidden (``hidden_images``): the image stays in the catalog and the index, with its
  labels, but searches, duplicate groups and cluster proposals leave it out; showing it
  again restores it.
* Kept (``keep_marks``): "keep this one" on the duplicates page; the group's image to
  keep is the marked member, whatever the automatic order says.
* Removed (``removed_files``): the image is deleted from the catalog (and so from the
  index, its labels with it) but not from disk; its path is recorded so that indexing
  the folder again does not bring it back (``removed_paths``); naming the file itself to
  ``index`` does (``forget_removed``).

An image that leaves the library (deleted, or moved between two runs' folders) keeps
its hidden and keep marks by content hash (Catalog.remove_images): the same content
indexed again is hidden or kept again.

Readers of a library whose catalog predates these tables (opened read-only, so not
migrated) see no marks: nobody can have made one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from lookalike.indexer.store.catalog import MIGRATIONS, Catalog

# The migration that created these tables: its 1-based position in MIGRATIONS.
MARKS_VERSION = next(n for n, m in enumerate(MIGRATIONS, 1) if "hidden_images" in m)


def _has_marks(catalog: Catalog) -> bool:
    return catalog.conn.execute("PRAGMA user_version").fetchone()[0] >= MARKS_VERSION


def hidden_ids(catalog: Catalog) -> set[int]:
    if not _has_marks(catalog):
        return set()
    return {r[0] for r in catalog.conn.execute("SELECT image_id FROM hidden_images")}


def kept_ids(catalog: Catalog) -> set[int]:
    if not _has_marks(catalog):
        return set()
    return {r[0] for r in catalog.conn.execute("SELECT image_id FROM keep_marks")}


def removed_paths(catalog: Catalog) -> set[str]:
    if not _has_marks(catalog):
        return set()
    return {r[0] for r in catalog.conn.execute("SELECT path FROM removed_files")}


def set_hidden(conn: sqlite3.Connection, image_id: int, hidden: bool) -> None:
    if hidden:
        conn.execute(
            "INSERT OR REPLACE INTO hidden_images (image_id, at) VALUES (?, ?)",
            (image_id, time.time()),
        )
    else:
        conn.execute("DELETE FROM hidden_images WHERE image_id = ?", (image_id,))


def set_kept(conn: sqlite3.Connection, image_id: int, group: Iterable[int]) -> None:
    """Mark ``image_id`` as the one to keep among ``group`` (the others lose their mark)."""
    others = [(i,) for i in group if i != image_id]
    conn.executemany("DELETE FROM keep_marks WHERE image_id = ?", others)
    conn.execute(
        "INSERT OR REPLACE INTO keep_marks (image_id, at) VALUES (?, ?)", (image_id, time.time())
    )


def record_removed(conn: sqlite3.Connection, path: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO removed_files (path, at) VALUES (?, ?)", (path, time.time())
    )


def forget_removed(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    """Index these removed files again (a person named them to ``index``)."""
    conn.executemany("DELETE FROM removed_files WHERE path = ?", [(p,) for p in paths])
