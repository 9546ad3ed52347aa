"""The catalog: one SQLite file per library holding images, vectors, labels and errors.

SQLite in WAL mode: one writer (the indexer, or a review action) and any number of
readers (searches, the web app) at once. Every change is a transaction, so a crash
leaves the last committed state; vectors live here too, which makes the FAISS file
a cache that can always be rebuilt.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypedDict

import numpy as np
import numpy.typing as npt

from lookalike.indexer.models.protocol import FeatureVector

# Each entry upgrades the schema by one version; append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        hash TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        added REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'ok'
    );
    CREATE INDEX images_hash ON images (hash);
    CREATE TABLE vectors (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        vector BLOB NOT NULL
    );
    CREATE TABLE predictions (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        top TEXT NOT NULL
    );
    CREATE TABLE errors (
        path TEXT PRIMARY KEY,
        size INTEGER,
        mtime_ns INTEGER,
        error TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE labels (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        origin TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX labels_label ON labels (label);
    CREATE TABLE tags (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        label TEXT,
        confidence REAL NOT NULL,
        head TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE pending_index (image_id INTEGER PRIMARY KEY);
    """,
    # Copy-detection descriptors (indexer/models/copy_model.py), float16. ``seq`` grows with
    # every write, so a reader catches up on the rows written since it last looked.
    """
    CREATE TABLE copy_vectors (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,
        vector BLOB NOT NULL
    );
    """,
    # Cluster proposals and review decisions (indexer/store/clusters.py). IF NOT EXISTS:
    # libraries clustered before this migration created the same tables on first use.
    """
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
    """,
]


class ImageRow(TypedDict):
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int
    height: int


def _image_row(row: sqlite3.Row) -> ImageRow:
    """An ``images`` row selected as (id, path, size, mtime_ns, hash, width, height)."""
    return ImageRow(
        id=row["id"],
        path=row["path"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        hash=row["hash"],
        width=row["width"],
        height=row["height"],
    )


class ErrorRow(NamedTuple):
    path: str
    error: str


class LabelRow(NamedTuple):
    path: str
    label: str
    origin: str  # folder, csv, manual or review
    at: float  # when (seconds since the epoch)


class TagRow(NamedTuple):
    path: str
    label: str | None  # None: the tagger said unknown
    confidence: float
    head: str
    at: float


class NewImage(NamedTuple):
    """An image to add or update, with its vector."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int
    height: int
    vector: FeatureVector
    top: list[tuple[str, float]] | None  # the model's own class guesses, best first


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


class Catalog:
    """Typed access to a library's SQLite file."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.conn = connect(self.path, readonly=readonly)
        if not readonly:
            self._migrate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump is part of the script.
            self.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    # -- meta ---------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def bump_content_version(self, conn: sqlite3.Connection) -> None:
        """Readers compare this to know when to reload the index."""
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('content_version', '1') ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    def content_version(self) -> int:
        return int(self.get_meta("content_version", "0") or 0)

    # -- images ---------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def known_files(self) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, hash) of every image."""
        rows = self.conn.execute("SELECT path, id, size, mtime_ns, hash FROM images")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def known_errors(self) -> dict[str, tuple[int | None, int | None, str]]:
        rows = self.conn.execute("SELECT path, size, mtime_ns, error FROM errors")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def ids_by_hash(self, digest: str) -> list[tuple[int, str]]:
        rows = self.conn.execute("SELECT id, path FROM images WHERE hash = ?", (digest,))
        return [(r[0], r[1]) for r in rows]

    def image(self, image_id: int) -> ImageRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, hash, width, height FROM images WHERE id = ?",
            (image_id,),
        ).fetchone()
        return _image_row(row) if row else None

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, hash, width, height FROM images WHERE path = ?",
            (path,),
        ).fetchone()
        return _image_row(row) if row else None

    def paths(self, ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in ids]
        out: dict[int, str] = {}
        for chunk in _chunks(ids, 900):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(f"SELECT id, path FROM images WHERE id IN ({marks})", chunk)
            out.update({r[0]: r[1] for r in rows})
        return out

    def write_images(self, conn: sqlite3.Connection, items: Sequence[NewImage]) -> list[int]:
        """Insert or update images (by path) with their vectors; returns their ids."""
        now = time.time()
        ids = []
        for it in items:
            row = conn.execute(
                "INSERT INTO images (path, size, mtime_ns, hash, width, height, added, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, "
                "width = excluded.width, height = excluded.height, updated = excluded.updated, "
                "status = 'ok' RETURNING id",
                (it.path, it.size, it.mtime_ns, it.hash, it.width, it.height, now, now),
            ).fetchone()
            image_id = row[0]
            ids.append(image_id)
            conn.execute(
                "INSERT OR REPLACE INTO vectors (image_id, vector) VALUES (?, ?)",
                (image_id, np.asarray(it.vector, dtype=np.float32).tobytes()),
            )
            # New content: its copy descriptor is computed again (indexer.store.copy_vectors).
            conn.execute("DELETE FROM copy_vectors WHERE image_id = ?", (image_id,))
            if it.top is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO predictions (image_id, top) VALUES (?, ?)",
                    (image_id, json.dumps([[n, round(float(s), 5)] for n, s in it.top])),
                )
            conn.execute("INSERT OR IGNORE INTO pending_index (image_id) VALUES (?)", (image_id,))
            conn.execute("DELETE FROM errors WHERE path = ?", (it.path,))
        if items:
            self.bump_content_version(conn)
        return ids

    def move_image(
        self, conn: sqlite3.Connection, image_id: int, path: str, size: int, mtime_ns: int
    ) -> None:
        """A file found under a new path with the same content: keep its id and data."""
        conn.execute("DELETE FROM images WHERE path = ? AND id != ?", (path, image_id))
        conn.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ?, updated = ? WHERE id = ?",
            (path, size, mtime_ns, time.time(), image_id),
        )
        conn.execute("DELETE FROM errors WHERE path = ?", (path,))
        self.bump_content_version(conn)

    def touch_image(
        self, conn: sqlite3.Connection, image_id: int, size: int, mtime_ns: int
    ) -> None:
        """Same content, new stat (for example a copy with a fresh mtime): no re-embedding."""
        conn.execute(
            "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, image_id)
        )

    def remove_images(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        for chunk in _chunks([int(i) for i in ids], 900):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)
            conn.executemany(
                "INSERT OR IGNORE INTO pending_index (image_id) VALUES (?)", [(i,) for i in chunk]
            )
        self.bump_content_version(conn)

    def record_error(
        self,
        conn: sqlite3.Connection,
        path: str,
        size: int | None,
        mtime_ns: int | None,
        error: str,
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO errors (path, size, mtime_ns, error, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (path, size, mtime_ns, error, time.time()),
        )

    def forget_errors(self, conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        conn.executemany("DELETE FROM errors WHERE path = ?", [(p,) for p in paths])

    def errors(self) -> list[ErrorRow]:
        rows = self.conn.execute("SELECT path, error FROM errors ORDER BY path")
        return [ErrorRow(r[0], r[1]) for r in rows]

    # -- vectors --------------------------------------------------------------
    def vector(self, image_id: int) -> FeatureVector | None:
        row = self.conn.execute(
            "SELECT vector FROM vectors WHERE image_id = ?", (image_id,)
        ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).copy() if row else None

    def vectors(
        self, ids: Iterable[int] | None = None, dim: int | None = None
    ) -> tuple[npt.NDArray[np.int64], FeatureVector]:
        """(ids, vectors) for the given ids, or for every image when ids is None."""
        if ids is None:
            rows = self.conn.execute("SELECT image_id, vector FROM vectors ORDER BY image_id")
            pairs = [(r[0], r[1]) for r in rows]
        else:
            pairs = []
            for chunk in _chunks([int(i) for i in ids], 900):
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    f"SELECT image_id, vector FROM vectors WHERE image_id IN ({marks})", chunk
                )
                pairs.extend((r[0], r[1]) for r in rows)
        out_ids = np.array([p[0] for p in pairs], dtype=np.int64)
        if not pairs:
            return out_ids, np.zeros((0, dim or 0), dtype=np.float32)
        mat = np.frombuffer(b"".join(p[1] for p in pairs), dtype=np.float32)
        return out_ids, mat.reshape(len(pairs), -1).copy()

    # -- copy-detection descriptors (lookalike.indexer.store.copy_vectors) ----------------------
    def without_copy_vectors(self) -> list[tuple[int, str]]:
        """(id, path) of the images that have no copy descriptor yet, in id order."""
        rows = self.conn.execute(
            "SELECT id, path FROM images WHERE id NOT IN (SELECT image_id FROM copy_vectors) "
            "ORDER BY id"
        )
        return [(r[0], r[1]) for r in rows]

    def write_copy_vectors(
        self, conn: sqlite3.Connection, ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO copy_vectors (image_id, vector) VALUES (?, ?)",
            [
                (int(i), np.asarray(v, dtype=np.float16).tobytes())
                for i, v in zip(ids, vectors, strict=True)
            ],
        )
        if len(ids):
            self.bump_content_version(conn)

    def copy_vectors_since(
        self, seq: int, limit: int
    ) -> tuple[int, npt.NDArray[np.int64], np.ndarray]:
        """(last seq, image ids, float16 rows) of up to ``limit`` rows written after ``seq``."""
        rows = self.conn.execute(
            "SELECT seq, image_id, vector FROM copy_vectors WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        ids = np.array([r[1] for r in rows], dtype=np.int64)
        if not rows:
            return seq, ids, np.zeros((0, 0), np.float16)
        mat = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float16)
        return rows[-1][0], ids, mat.reshape(len(rows), -1)

    def copy_vector_ids(self) -> npt.NDArray[np.int64]:
        rows = self.conn.execute("SELECT image_id FROM copy_vectors")
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def count_copy_vectors(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM copy_vectors").fetchone()[0]

    def clear_copy_vectors(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM copy_vectors")
        self.bump_content_version(conn)

    def pending_index(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT image_id FROM pending_index")]

    def clear_pending(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        conn.executemany("DELETE FROM pending_index WHERE image_id = ?", [(i,) for i in ids])

    # -- predictions ---------------------------------------------------------
    def predictions(self, image_id: int) -> list[tuple[str, float]]:
        row = self.conn.execute(
            "SELECT top FROM predictions WHERE image_id = ?", (image_id,)
        ).fetchone()
        return [(n, s) for n, s in json.loads(row[0])] if row else []

    # -- labels ----------------------------------------------------------------
    def set_labels(
        self, conn: sqlite3.Connection, items: Iterable[tuple[int, str]], origin: str
    ) -> None:
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO labels (image_id, label, origin, at) VALUES (?, ?, ?, ?)",
            [(i, label, origin, now) for i, label in items],
        )

    def label_of(self, image_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT label FROM labels WHERE image_id = ?", (image_id,)
        ).fetchone()
        return row[0] if row else None

    # -- labels, tags and predictions for the classifier (lookalike.classifier) ---------
    def labels(self) -> dict[int, str]:
        """image id -> human label, in id order."""
        rows = self.conn.execute("SELECT image_id, label FROM labels ORDER BY image_id")
        return {r[0]: r[1] for r in rows}

    def labels_of(self, ids: Iterable[int]) -> dict[int, str]:
        """image id -> human label of those of ``ids`` that have one."""
        out: dict[int, str] = {}
        for chunk in _chunks([int(i) for i in ids], 900):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT image_id, label FROM labels WHERE image_id IN ({marks})", chunk
            )
            out.update((r[0], r[1]) for r in rows)
        return out

    def label_names(self) -> list[str]:
        """The distinct human labels, sorted."""
        rows = self.conn.execute("SELECT DISTINCT label FROM labels ORDER BY label")
        return [r[0] for r in rows]

    def remove_labels(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        conn.executemany("DELETE FROM labels WHERE image_id = ?", [(int(i),) for i in ids])

    def bump_labels_version(self, conn: sqlite3.Connection) -> None:
        """Tag runs record this, to tell when the labels changed since."""
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('labels_version', '1') ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    def labels_version(self) -> int:
        return int(self.get_meta("labels_version", "0") or 0)

    def unlabelled_ids(self) -> list[int]:
        """Ids of the images without a human label, in id order."""
        rows = self.conn.execute(
            "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM labels) ORDER BY id"
        )
        return [r[0] for r in rows]

    def ids_under(self, folder: str) -> list[int]:
        """Ids of the images whose path lies under ``folder`` (an absolute path)."""
        prefix = folder.rstrip(os.sep) + os.sep
        rows = self.conn.execute(
            "SELECT id FROM images WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        )
        return [r[0] for r in rows]

    def label_counts(self) -> dict[str, int]:
        """human label -> number of images labelled so."""
        rows = self.conn.execute("SELECT label, COUNT(*) FROM labels GROUP BY label")
        return {r[0]: r[1] for r in rows}

    def tag_counts(self) -> dict[str | None, int]:
        """predicted label (None: unknown) -> number of images tagged so."""
        rows = self.conn.execute("SELECT label, COUNT(*) FROM tags GROUP BY label")
        return {r[0]: r[1] for r in rows}

    def label_rows(self) -> list[LabelRow]:
        """Every human label with its image's path, by path."""
        rows = self.conn.execute(
            "SELECT i.path, l.label, l.origin, l.at FROM labels l "
            "JOIN images i ON i.id = l.image_id ORDER BY i.path"
        )
        return [LabelRow(*r) for r in rows]

    def tag_rows(self) -> list[TagRow]:
        """Every predicted tag with its image's path, by path."""
        rows = self.conn.execute(
            "SELECT i.path, t.label, t.confidence, t.head, t.at FROM tags t "
            "JOIN images i ON i.id = t.image_id ORDER BY i.path"
        )
        return [TagRow(*r) for r in rows]

    def drop_tags(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        conn.executemany("DELETE FROM tags WHERE image_id = ?", [(int(i),) for i in ids])

    def replace_tags(
        self,
        conn: sqlite3.Connection,
        tags: Iterable[tuple[int, str | None, float]],
        head: str,
        at: float,
    ) -> None:
        """The tags of a tag run, (image id, label or None, confidence), replacing all."""
        conn.execute("DELETE FROM tags")
        conn.executemany(
            "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, ?, ?, ?, ?)",
            [(int(i), label, float(c), head, at) for i, label, c in tags],
        )

    def predictions_of(self, ids: Iterable[int]) -> dict[int, list[tuple[str, float]]]:
        """image id -> the model's stored class guesses, best first, for ``ids`` with some."""
        out: dict[int, list[tuple[str, float]]] = {}
        for chunk in _chunks([int(i) for i in ids], 900):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT image_id, top FROM predictions WHERE image_id IN ({marks})", chunk
            )
            out.update((r[0], [(n, float(s)) for n, s in json.loads(r[1])]) for r in rows)
        return out


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
