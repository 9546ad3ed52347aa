"""The catalog: one SQLite file per library holding images, vectors, labels and errors.

SQLite in WAL mode: one writer (the indexer, or a review action) and any number of
readers (searches, the web app) at once. Every change is a transaction, so a crash
leaves the last committed state; vectors live here too, which makes the FAISS file
a cache that can always be rebuilt. The indexer, the searcher and the web app's
services ask ``Catalog`` methods (typed rows) rather than writing SQL of their own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypedDict
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from lookalike.indexer.errors import CatalogUnavailable, LibraryReadOnly
from lookalike.indexer.identity import Identity, IndexedFile
from lookalike.indexer.label_text import canonical, first_spellings, match_key, normal_form
from lookalike.indexer.models.protocol import FeatureVector

log = logging.getLogger(__name__)

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
    # Human labels of removed images, by content hash: the same content indexed again
    # gets its label back (Catalog.remove_images, Catalog.write_images). ``max_pixels``:
    # the limit a "too large" file was refused under; a higher limit retries it.
    """
    CREATE TABLE kept_labels (
        hash TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        origin TEXT NOT NULL,
        at REAL NOT NULL
    );
    ALTER TABLE errors ADD COLUMN max_pixels INTEGER;
    """,
    # The identity (device, inode) of the file each image was read from, so that what
    # serves it can refuse a file swapped since (lookalike.indexer.identity); NULL for
    # rows indexed before, which are checked by size and mtime only.
    """
    ALTER TABLE images ADD COLUMN dev INTEGER;
    ALTER TABLE images ADD COLUMN ino INTEGER;
    """,
    # Verdicts of the duplicates pass (indexer/store/duplicate_pairs.py): a pair (a < b)
    # checked while the two files had these hashes, and the local matches found.
    """
    CREATE TABLE duplicate_pairs (
        a INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        a_hash TEXT NOT NULL,
        b_hash TEXT NOT NULL,
        inliers INTEGER NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (a, b)
    ) WITHOUT ROWID;
    CREATE INDEX duplicate_pairs_b ON duplicate_pairs (b);
    """,
    # What a person decided about images (indexer/store/image_marks.py): hidden from
    # results, the copy to keep of a duplicate group, and files taken out of the library
    # (by path: indexing skips them until they are put back).
    """
    CREATE TABLE hidden_images (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        at REAL NOT NULL
    );
    CREATE TABLE keep_marks (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        at REAL NOT NULL
    );
    CREATE TABLE removed_files (path TEXT PRIMARY KEY, at REAL NOT NULL);
    """,
    # Bounding boxes (indexer/store/boxes.py): a region of an image in its pixels as
    # indexed (EXIF-rotated, x1 and y1 exclusive), its label (NULL only for a suggested
    # box not yet accepted), 'human' or 'suggested', the image's content hash when the
    # box was drawn (a box on content changed since is stale, never applied), and the
    # crop's vector with the key of the model that made it. ``kept_boxes``: the human
    # boxes of removed images by content hash, back when the same content is indexed.
    """
    CREATE TABLE boxes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        x0 INTEGER NOT NULL,
        y0 INTEGER NOT NULL,
        x1 INTEGER NOT NULL,
        y1 INTEGER NOT NULL,
        label TEXT,
        origin TEXT NOT NULL CHECK (origin IN ('human', 'suggested')),
        hash TEXT NOT NULL,
        vector BLOB,
        model TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        CHECK (x1 > x0 AND y1 > y0 AND x0 >= 0 AND y0 >= 0)
    );
    CREATE INDEX boxes_image ON boxes (image_id);
    CREATE INDEX boxes_label ON boxes (label);
    CREATE TABLE kept_boxes (
        hash TEXT NOT NULL,
        x0 INTEGER NOT NULL,
        y0 INTEGER NOT NULL,
        x1 INTEGER NOT NULL,
        y1 INTEGER NOT NULL,
        label TEXT NOT NULL,
        vector BLOB,
        model TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX kept_boxes_hash ON kept_boxes (hash);
    """,
    # Suggested boxes a person deleted (indexer/store/boxes.py): the image page offers no
    # main-object suggestion again while the image keeps the content it was dismissed on.
    """
    CREATE TABLE dismissed_suggestions (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # Perceptual hashes of the duplicates pass (indexer/store/image_hashes.py): an
    # image's low frequencies (float32 BAND x BAND) while its file had this content
    # hash; NULL coefficients: a blank image, which has no hash.
    """
    CREATE TABLE image_hashes (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        coefficients BLOB
    );
    """,
    # The members of rejected clusters among removed images, by content hash: the same
    # content indexed again is a member again, so the rejected group stays rejected
    # (Catalog.remove_images, Catalog._restore_label).
    """
    CREATE TABLE kept_cluster_members (
        cluster_id INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
        hash TEXT NOT NULL,
        PRIMARY KEY (cluster_id, hash)
    );
    CREATE INDEX kept_cluster_members_hash ON kept_cluster_members (hash);
    """,
    # Content hashes of images whose human label a person removed (Catalog.remove_labels):
    # labelling from folders passes them by, so an index run never puts back a label a
    # person took away; a person's own label clears the mark (Catalog.set_labels).
    """
    CREATE TABLE unlabelled_hashes (
        hash TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    """,
    # The hidden and "keep this one" marks of removed images, by content hash: the same
    # content indexed again (a disk back, a file moved between two runs' folders) is
    # hidden or kept again (Catalog.remove_images, Catalog._restore_label).
    """
    CREATE TABLE kept_marks (
        hash TEXT PRIMARY KEY,
        hidden INTEGER NOT NULL,
        keep INTEGER NOT NULL
    );
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


class ErrorRecord(NamedTuple):
    """A file that could not be indexed, and when that was recorded."""

    path: str
    error: str
    at: float  # time.time()


class LabelRow(TypedDict):
    """An image's human label."""

    label: str
    origin: str  # folder, csv, manual or review
    at: float


class TagRow(TypedDict):
    """An image's predicted tag; ``label`` None: the tagger said "unknown"."""

    label: str | None
    confidence: float
    head: str
    at: float


class LabelExport(NamedTuple):
    """A human label with its image's path (a row of the labels CSV)."""

    path: str
    label: str
    origin: str  # folder, csv, manual or review
    at: float  # when (seconds since the epoch)


class LabelledImage(NamedTuple):
    """A human-labelled image with its size (a COCO or YOLO export's row)."""

    id: int
    path: str
    width: int
    height: int
    label: str


class TagExport(NamedTuple):
    """A predicted tag with its image's path (a row of the tags CSV)."""

    path: str
    label: str | None  # None: the tagger said unknown
    confidence: float
    head: str
    at: float


class CardRow(NamedTuple):
    """What a grid card shows of an image: its file, human label and predicted tag."""

    id: int
    path: str
    hash: str
    label: str | None  # the human label
    tagged: bool  # has a predicted tag (whose label may be None: "unknown")
    tag: str | None
    confidence: float | None
    offline: bool  # its folder could not be read at the last index run (kept, not served)


class StoredEmbedding(NamedTuple):
    """What an indexed image's content gave: reused for a copy of the same bytes."""

    width: int
    height: int
    vector: FeatureVector
    top: list[tuple[str, float]] | None  # the model's class guesses, best first


class ImageCounts(NamedTuple):
    """How many images each browse filter holds (the web's library page)."""

    images: int
    labelled: int  # with a human label
    tagged: int  # with a predicted tag and no human label, "unknown" ones included
    unknown: int  # of those, the ones the tagger abstained on
    errors: int  # files that could not be indexed


MAX_ID = 2**63 - 1  # SQLite's largest integer: no row id (image, cluster) is larger

BROWSE_FILTERS = ("all", "labelled", "unlabelled", "tagged", "unknown")


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
        conn = _connect_readonly(path)
    else:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection, also where SQLite cannot write the WAL's -shm file.

    A WAL-mode reader needs catalog.sqlite-shm, which it creates if missing: on a
    read-only mount (or without write permission) that fails with "unable to open
    database file". There nothing can change the file, so it is opened immutable.
    A WAL there that still holds commits without its -shm (a copy taken while a
    writer had it open) is not read: those changes are missing, and a warning says so.
    """
    uri = f"file:{quote(str(path))}"
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise  # a place SQLite can write to: not this problem
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        log.warning(
            "%s holds changes that cannot be read on this read-only copy without its "
            "-shm file: the catalog is read as of its last checkpoint",
            wal,
        )
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30, check_same_thread=False)


def catalog_unavailable(path: Path, e: sqlite3.DatabaseError) -> CatalogUnavailable:
    """The domain error for an SQLite error on opening ``path``: why, in words."""
    name = e.sqlite_errorname
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 1 << 30
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and free < FULL_BELOW):
        return CatalogUnavailable(path, f"the disk is full ({e}); free some space and rerun")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return CatalogUnavailable(
            path,
            f"{e}: it is damaged or not a Lookalike catalog (`lookalike check` says more; "
            "restore catalog.sqlite from a backup)",
        )
    return CatalogUnavailable(path, str(e))


# Free bytes under which an SQLite I/O error on opening is taken for a full disk.
FULL_BELOW = 1 << 20


def _read_only_here(path: Path) -> bool:
    """True when this process cannot write the catalog (or create it) at ``path``."""
    if path.exists():
        return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    return path.parent.exists() and not os.access(path.parent, os.W_OK)


class Catalog:
    """Typed access to a library's SQLite file."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open the catalog at ``path``.

        Raises:
            LibraryReadOnly: a writable catalog asked for where it can only be read.
            CatalogUnavailable: SQLite cannot open or read it (damaged, full disk).
        """
        self.path = Path(path)
        self.readonly = readonly
        if not readonly and _read_only_here(self.path):
            raise LibraryReadOnly(self.path.parent)
        try:
            self.conn = connect(self.path, readonly=readonly)
            self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            self._check_schema()
            if not readonly:
                self._migrate()
        except sqlite3.DatabaseError as e:
            raise catalog_unavailable(self.path, e) from e

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

    def write_in_chunks(self, sql: str, items: list[tuple], chunk: int = 5000) -> None:
        """``executemany(sql, items)``, ``chunk`` rows a transaction: a long write of
        recomputable rows (pair verdicts, hashes) never holds the writer lock for long."""
        for start in range(0, len(items), chunk):
            with self.transaction() as conn:
                conn.executemany(sql, items[start : start + chunk])

    def _check_schema(self) -> None:
        """Refuse a catalog of a newer schema than this code knows (written by a newer
        Lookalike): reading or writing it could misread what that version stores."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            self.conn.close()
            raise CatalogUnavailable(
                self.path,
                f"it was written by a newer Lookalike (catalog schema {version}, this one"
                f" knows schemas up to {len(MIGRATIONS)}); upgrade Lookalike to open it",
            )

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump is part of the script.
            try:
                self.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
            except sqlite3.DatabaseError as e:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                why = catalog_unavailable(self.path, e).reason
                raise CatalogUnavailable(
                    self.path, f"cannot upgrade it from schema {number - 1} to {number}: {why}"
                ) from e

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity_check and foreign_key_check find; [] when whole."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
            problems = [] if rows == ["ok"] else rows
            for r in self.conn.execute("PRAGMA foreign_key_check"):
                problems.append(f"row {r[1]} of {r[0]} refers to a missing row of {r[2]}")
        except sqlite3.DatabaseError as e:  # too damaged for the check itself
            return [str(e)]
        return problems

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

    def existing_ids(self, ids: Iterable[int]) -> set[int]:
        """The ids among ``ids`` that are indexed images."""
        rows = self._rows_in("SELECT id FROM images WHERE id IN ({marks})", _ints(ids))
        return {r[0] for r in rows}

    def ids_of_paths(self, paths: Iterable[str]) -> dict[str, int]:
        """path -> id for the given paths that are indexed."""
        rows = self._rows_in("SELECT path, id FROM images WHERE path IN ({marks})", list(paths))
        return {r[0]: r[1] for r in rows}

    def cards(self, ids: Iterable[int]) -> list[CardRow]:
        """The card rows of the indexed images among ``ids``, in no particular order."""
        rows = self._rows_in(
            "SELECT i.id, i.path, i.hash, l.label, t.image_id IS NOT NULL, t.label, "
            "t.confidence, i.status = 'offline' FROM images i "
            "LEFT JOIN labels l ON l.image_id = i.id "
            "LEFT JOIN tags t ON t.image_id = i.id WHERE i.id IN ({marks})",
            _ints(ids),
        )
        return [CardRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], bool(r[7])) for r in rows]

    def stored_embedding(self, image_id: int) -> StoredEmbedding | None:
        """The size, vector and class guesses of an indexed image; None if it has none."""
        row = self.conn.execute(
            "SELECT i.width, i.height, v.vector, p.top FROM images i JOIN vectors v "
            "ON v.image_id = i.id LEFT JOIN predictions p ON p.image_id = i.id WHERE i.id = ?",
            (image_id,),
        ).fetchone()
        if row is None:
            return None
        top = [(n, s) for n, s in json.loads(row[3])] if row[3] else None
        return StoredEmbedding(row[0], row[1], np.frombuffer(row[2], dtype=np.float32), top)

    def browse_ids(self, filter: str, label: str | None, after: int, limit: int) -> list[int]:
        """One page of image ids in id order after ``after`` (see browse_query); a
        ``label`` matches as labels do (``KANGAROO`` finds ``kangaroo``)."""
        sql, args = browse_query(filter, self.stored_label(label), after, limit)
        return [r[0] for r in self.conn.execute(sql, args)]

    def image_counts(self) -> ImageCounts:
        total = self.count()
        labelled = self.conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        tagged, unknown = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(t.label IS NULL), 0) FROM tags t "
            "WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = t.image_id)"
        ).fetchone()
        errors = self.conn.execute("SELECT COUNT(*) FROM errors").fetchone()[0]
        return ImageCounts(total, labelled, tagged, unknown, errors)

    def label_row(self, image_id: int) -> LabelRow | None:
        row = self.conn.execute(
            "SELECT label, origin, at FROM labels WHERE image_id = ?", (image_id,)
        ).fetchone()
        return LabelRow(label=row[0], origin=row[1], at=row[2]) if row else None

    def label_counts(self) -> list[tuple[str, int]]:
        """(label, images) of every human label, the largest first."""
        rows = self.conn.execute(
            "SELECT label, COUNT(*) AS n FROM labels GROUP BY label ORDER BY n DESC, label"
        )
        return [(r[0], r[1]) for r in rows]

    def label_origins(self) -> dict[int, str]:
        """image id -> where its human label came from, for every labelled image."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT image_id, origin FROM labels")}

    def tag_row(self, image_id: int) -> TagRow | None:
        row = self.conn.execute(
            "SELECT label, confidence, head, at FROM tags WHERE image_id = ?", (image_id,)
        ).fetchone()
        if row is None:
            return None
        return TagRow(label=row[0], confidence=row[1], head=row[2], at=row[3])

    def tag_counts(self) -> tuple[int, int]:
        """(images with a predicted tag, of which "unknown")."""
        row = self.conn.execute("SELECT COUNT(*), SUM(label IS NULL) FROM tags").fetchone()
        return row[0] or 0, int(row[1] or 0)

    def remove_tags(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Forget the images' predicted tags (a later tagging run may predict them again)."""
        conn.executemany("DELETE FROM tags WHERE image_id = ?", [(int(i),) for i in ids])

    def errors_after(self, after: str, limit: int) -> list[ErrorRecord]:
        """Up to ``limit`` unreadable files whose path sorts after ``after``, in path order."""
        rows = self.conn.execute(
            "SELECT path, error, at FROM errors WHERE path > ? ORDER BY path LIMIT ?",
            (after, limit),
        )
        return [ErrorRecord(r[0], r[1], r[2]) for r in rows]

    def _rows_in(self, sql: str, items: Sequence) -> Iterator[sqlite3.Row]:
        """The rows of ``sql``, whose ``{marks}`` is an ``IN (...)`` list, for ``items``
        (IN_CHUNK of them a query)."""
        for chunk in _chunks(list(items), IN_CHUNK):
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def known_files(self) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, hash) of every image."""
        rows = self.conn.execute("SELECT path, id, size, mtime_ns, hash FROM images")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def known_errors(self) -> dict[str, tuple[int | None, int | None, str, int | None]]:
        """path -> (size, mtime_ns, error, the pixel limit it was refused under or None)."""
        rows = self.conn.execute("SELECT path, size, mtime_ns, error, max_pixels FROM errors")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def error_of(self, path: str) -> str | None:
        """Why the file at ``path`` could not be indexed, or None."""
        row = self.conn.execute("SELECT error FROM errors WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def ids_by_hash(self, digest: str) -> list[tuple[int, str]]:
        rows = self.conn.execute("SELECT id, path FROM images WHERE hash = ?", (digest,))
        return [(r[0], r[1]) for r in rows]

    def image(self, image_id: int) -> ImageRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, hash, width, height FROM images WHERE id = ?",
            (image_id,),
        ).fetchone()
        return _image_row(row) if row else None

    def images(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        """id -> row of the indexed images among ``ids``."""
        rows = self._rows_in(
            "SELECT id, path, size, mtime_ns, hash, width, height FROM images "
            "WHERE id IN ({marks})",
            _ints(ids),
        )
        return {r["id"]: _image_row(r) for r in rows}

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, hash, width, height FROM images WHERE path = ?",
            (path,),
        ).fetchone()
        return _image_row(row) if row else None

    def indexed_file(self, image_id: int) -> tuple[str, str, IndexedFile] | None:
        """(path, content hash, what was indexed of the file) of an image, or None."""
        row = self.conn.execute(
            "SELECT path, hash, size, mtime_ns, dev, ino FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        if row is None:
            return None
        known = row["dev"] is not None and row["ino"] is not None
        identity = Identity(row["dev"], row["ino"]) if known else None
        return row["path"], row["hash"], IndexedFile(row["size"], row["mtime_ns"], identity)

    def set_identities(
        self, conn: sqlite3.Connection, identities: Iterable[tuple[str, Identity]]
    ) -> None:
        """Record the identity of the file each path was read from (this run)."""
        conn.executemany(
            "UPDATE images SET dev = ?, ino = ? WHERE path = ?",
            [(i.dev, i.ino, path) for path, i in identities],
        )

    def paths(self, ids: Iterable[int]) -> dict[int, str]:
        rows = self._rows_in("SELECT id, path FROM images WHERE id IN ({marks})", _ints(ids))
        return {r[0]: r[1] for r in rows}

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
            self._restore_label(conn, image_id, it.hash)
        if items:
            self.bump_content_version(conn)
        return ids

    def move_image(
        self, conn: sqlite3.Connection, image_id: int, path: str, size: int, mtime_ns: int
    ) -> None:
        """A file found under a new path with the same content: keep its id and data."""
        conn.execute("DELETE FROM images WHERE path = ? AND id != ?", (path, image_id))
        conn.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ?, updated = ?, status = 'ok' "
            "WHERE id = ?",
            (path, size, mtime_ns, time.time(), image_id),
        )
        conn.execute("DELETE FROM errors WHERE path = ?", (path,))
        self.bump_content_version(conn)

    def touch_image(
        self, conn: sqlite3.Connection, image_id: int, size: int, mtime_ns: int
    ) -> None:
        """Same content, new stat (for example a copy with a fresh mtime): no re-embedding."""
        conn.execute(
            "UPDATE images SET size = ?, mtime_ns = ?, status = 'ok' WHERE id = ?",
            (size, mtime_ns, image_id),
        )

    def set_offline(self, conn: sqlite3.Connection, ids: Iterable[int], offline: bool) -> None:
        """Mark images whose folder cannot be read now (kept until it is back or removed)."""
        status = "offline" if offline else "ok"
        conn.executemany(
            "UPDATE images SET status = ? WHERE id = ?", [(status, i) for i in _ints(ids)]
        )

    def offline_ids(self) -> set[int]:
        """Ids of the images marked offline."""
        rows = self.conn.execute("SELECT id FROM images WHERE status = 'offline'")
        return {r[0] for r in rows}

    def offline_paths(self) -> list[str]:
        """Paths of the images marked offline, sorted."""
        rows = self.conn.execute("SELECT path FROM images WHERE status = 'offline' ORDER BY path")
        return [r[0] for r in rows]

    def _kept_spellings(self, conn: sqlite3.Connection) -> list[str]:
        """The labels of removed images (labels, then boxes), first spelling first."""
        return [r[0] for r in conn.execute(_KEPT_SPELLINGS)] + [
            r[0] for r in conn.execute(_KEPT_BOX_SPELLINGS)
        ]

    def _restore_label(self, conn: sqlite3.Connection, image_id: int, digest: str) -> None:
        """A removed image's human label, boxes, rejected clusters and hidden and keep
        marks, back on the same content indexed again; the label in the spelling the
        library's labels have now (a label that differs only in case made meanwhile is
        the same label: label_text)."""
        kept = conn.execute(
            "SELECT label, origin, at FROM kept_labels WHERE hash = ?", (digest,)
        ).fetchall()
        kept_boxes = conn.execute(
            "SELECT x0, y0, x1, y1, label, hash, vector, model, created, updated "
            "FROM kept_boxes WHERE hash = ?",
            (digest,),
        ).fetchall()
        rejected = conn.execute(
            "INSERT OR IGNORE INTO cluster_members (cluster_id, image_id, rep) "
            "SELECT cluster_id, ?, NULL FROM kept_cluster_members WHERE hash = ?",
            (image_id, digest),
        ).rowcount
        if rejected:  # a member of the rejected groups it was in, again
            conn.execute("DELETE FROM kept_cluster_members WHERE hash = ?", (digest,))
        marks = conn.execute(
            "SELECT hidden, keep FROM kept_marks WHERE hash = ?", (digest,)
        ).fetchone()
        if marks is not None:  # hidden or kept, again
            now = time.time()
            if marks[0]:
                conn.execute(
                    "INSERT OR IGNORE INTO hidden_images (image_id, at) VALUES (?, ?)",
                    (image_id, now),
                )
            if marks[1]:
                conn.execute(
                    "INSERT OR IGNORE INTO keep_marks (image_id, at) VALUES (?, ?)",
                    (image_id, now),
                )
            conn.execute("DELETE FROM kept_marks WHERE hash = ?", (digest,))
        if not kept and not kept_boxes:
            return
        live = [r[0] for r in conn.execute(_FIRST_SPELLINGS)]
        live += [r[0] for r in conn.execute(_BOX_SPELLINGS)]
        first = first_spellings(live)

        def spelling(label: str) -> str:  # unchecked: a kept label passed the rule once
            return first.get(match_key(label), label)

        restored = conn.executemany(
            "INSERT OR IGNORE INTO labels (image_id, label, origin, at) VALUES (?, ?, ?, ?)",
            [(image_id, spelling(label), origin, at) for label, origin, at in kept],
        ).rowcount
        boxes = conn.executemany(
            "INSERT INTO boxes (image_id, x0, y0, x1, y1, label, origin, hash, vector, model, "
            "created, updated) VALUES (?, ?, ?, ?, ?, ?, 'human', ?, ?, ?, ?, ?)",
            [
                (image_id, x0, y0, x1, y1, None if label is None else spelling(label), *rest)
                for x0, y0, x1, y1, label, *rest in kept_boxes
            ],
        ).rowcount
        if boxes:
            conn.execute("DELETE FROM kept_boxes WHERE hash = ?", (digest,))
        if restored:
            conn.execute("DELETE FROM kept_labels WHERE hash = ?", (digest,))
        if restored or boxes:
            self.bump_labels_version(conn)

    def remove_images(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Remove images from the library; their human labels, boxes (drawn on the
        content the image has now, that is), memberships of rejected clusters and
        hidden and keep marks are kept by content hash."""
        for chunk in _chunks(_ints(ids), IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            conn.execute(
                "INSERT OR REPLACE INTO kept_labels (hash, label, origin, at) "
                "SELECT i.hash, l.label, l.origin, l.at FROM labels l "
                f"JOIN images i ON i.id = l.image_id WHERE i.id IN ({marks})",
                chunk,
            )
            conn.execute(
                f"DELETE FROM kept_boxes WHERE hash IN (SELECT hash FROM images "
                f"WHERE id IN ({marks}))",
                chunk,
            )
            conn.execute(
                "INSERT INTO kept_boxes (hash, x0, y0, x1, y1, label, vector, model, created, "
                "updated) SELECT b.hash, b.x0, b.y0, b.x1, b.y1, b.label, b.vector, b.model, "
                "b.created, b.updated FROM boxes b JOIN images i ON i.id = b.image_id "
                f"WHERE i.id IN ({marks}) AND b.origin = 'human' AND b.hash = i.hash",
                chunk,
            )
            conn.execute(
                "INSERT OR IGNORE INTO kept_cluster_members (cluster_id, hash) "
                "SELECT m.cluster_id, i.hash FROM cluster_members m "
                "JOIN images i ON i.id = m.image_id JOIN clusters c ON c.id = m.cluster_id "
                f"WHERE c.status = 'rejected' AND i.id IN ({marks})",
                chunk,
            )
            conn.execute(
                "INSERT OR REPLACE INTO kept_marks (hash, hidden, keep) SELECT i.hash, "
                "EXISTS (SELECT 1 FROM hidden_images h WHERE h.image_id = i.id), "
                "EXISTS (SELECT 1 FROM keep_marks k WHERE k.image_id = i.id) FROM images i "
                f"WHERE i.id IN ({marks}) AND (i.id IN (SELECT image_id FROM hidden_images) "
                "OR i.id IN (SELECT image_id FROM keep_marks))",
                chunk,
            )
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
        max_pixels: int | None = None,
    ) -> None:
        """A file that could not be indexed; ``max_pixels``: the limit it was too large for."""
        conn.execute(
            "INSERT OR REPLACE INTO errors (path, size, mtime_ns, error, at, max_pixels) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (path, size, mtime_ns, error, time.time(), max_pixels),
        )

    def forget_errors(self, conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        conn.executemany("DELETE FROM errors WHERE path = ?", [(p,) for p in paths])

    def errors(self) -> list[ErrorRow]:
        rows = self.conn.execute("SELECT path, error FROM errors ORDER BY path")
        return [ErrorRow(r[0], r[1]) for r in rows]

    # -- vectors --------------------------------------------------------------
    def vector_ids(self) -> npt.NDArray[np.int64]:
        """The ids of every image with a vector, ascending."""
        rows = self.conn.execute("SELECT image_id FROM vectors ORDER BY image_id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def count_vectors(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

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
            sql = "SELECT image_id, vector FROM vectors WHERE image_id IN ({marks})"
            pairs = [(r[0], r[1]) for r in self._rows_in(sql, _ints(ids))]
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
    ) -> list[int]:
        """Write human labels (in the caller's transaction); returns the ids whose label
        or origin changed. Every label passes the one label rule (label_text), and one
        that differs from an existing label only in case takes its spelling. A changed
        image loses its predicted tag (the human label replaces it) and the labels
        version moves on; an unchanged one is left as it was (a folder label written
        again by every index run changes nothing).

        Raises:
            BadLabel: a label breaks the rule; nothing is written.
        """
        given = list(items)
        existing = [r[0] for r in conn.execute(_FIRST_SPELLINGS)]
        existing += [r[0] for r in conn.execute(_BOX_SPELLINGS)]  # a box's label is one too
        existing += self._kept_spellings(conn)  # and a removed image's, back when indexed
        spelling = canonical({label for _, label in given}, existing)
        items = [(int(i), spelling[label]) for i, label in given]
        before = {
            r[0]: (r[1], r[2])
            for r in self._rows_in(
                "SELECT image_id, label, origin FROM labels WHERE image_id IN ({marks})",
                [i for i, _ in items],
            )
        }
        changed = [(i, label) for i, label in items if before.get(i) != (label, origin)]
        if not changed:
            return []
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO labels (image_id, label, origin, at) VALUES (?, ?, ?, ?)",
            [(i, label, origin, now) for i, label in changed],
        )
        ids = [i for i, _ in changed]
        if origin != "folder":  # a person labelled it again: folder labels may follow it
            for chunk in _chunks(ids, IN_CHUNK):
                conn.execute(
                    "DELETE FROM unlabelled_hashes WHERE hash IN "
                    f"(SELECT hash FROM images WHERE id IN ({','.join('?' * len(chunk))}))",
                    chunk,
                )
        self.remove_tags(conn, ids)
        self.bump_labels_version(conn)
        return ids

    def label_rows_of(self, ids: Iterable[int]) -> dict[int, LabelRow]:
        """image id -> its label row (label, origin, when), for ``ids`` with a label."""
        rows = self._rows_in(
            "SELECT image_id, label, origin, at FROM labels WHERE image_id IN ({marks})",
            _ints(ids),
        )
        return {r[0]: LabelRow(label=r[1], origin=r[2], at=r[3]) for r in rows}

    def tag_rows_of(self, ids: Iterable[int]) -> dict[int, TagRow]:
        """image id -> its predicted tag row, for ``ids`` with a tag."""
        rows = self._rows_in(
            "SELECT image_id, label, confidence, head, at FROM tags WHERE image_id IN ({marks})",
            _ints(ids),
        )
        return {r[0]: TagRow(label=r[1], confidence=r[2], head=r[3], at=r[4]) for r in rows}

    def restore_annotations(
        self,
        conn: sqlite3.Connection,
        ids: Sequence[int],
        labels: dict[int, LabelRow],
        tags: dict[int, TagRow],
    ) -> None:
        """Put back the labels and tags ``ids`` had (as read by label_rows_of and
        tag_rows_of): an id absent from ``labels`` (``tags``) has none afterwards."""
        keys = [(int(i),) for i in ids]
        conn.executemany("DELETE FROM labels WHERE image_id = ?", keys)
        conn.executemany("DELETE FROM tags WHERE image_id = ?", keys)
        conn.executemany(
            "INSERT INTO labels (image_id, label, origin, at) VALUES (?, ?, ?, ?)",
            [(i, r["label"], r["origin"], r["at"]) for i, r in labels.items()],
        )
        conn.executemany(
            "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, ?, ?, ?, ?)",
            [(i, r["label"], r["confidence"], r["head"], r["at"]) for i, r in tags.items()],
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
        rows = self._rows_in(
            "SELECT image_id, label FROM labels WHERE image_id IN ({marks})", _ints(ids)
        )
        return {r[0]: r[1] for r in rows}

    def stored_label(self, label: str | None) -> str | None:
        """The library's spelling of ``label`` (labels match as they are stored:
        NFKC-normalised, trimmed, case-insensitively), or ``label`` itself when no image
        has it."""
        if label is None:
            return None
        if self.conn.execute("SELECT 1 FROM labels WHERE label = ? LIMIT 1", (label,)).fetchone():
            return label
        key = match_key(normal_form(label))
        return first_spellings(self.label_names()).get(key, label)

    def label_names(self) -> list[str]:
        """The distinct human labels, sorted."""
        rows = self.conn.execute("SELECT DISTINCT label FROM labels ORDER BY label")
        return [r[0] for r in rows]

    def remove_labels(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Remove the images' human labels (a person's removal: labelling from folders
        never puts them back, see unlabelled_hashes)."""
        ids = [int(i) for i in ids]
        hashes = self._rows_in(
            "SELECT i.hash FROM images i JOIN labels l ON l.image_id = i.id "
            "WHERE i.id IN ({marks})",
            ids,
        )
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO unlabelled_hashes (hash, at) VALUES (?, ?)",
            [(r[0], now) for r in hashes],
        )
        conn.executemany("DELETE FROM labels WHERE image_id = ?", [(i,) for i in ids])

    def unlabelled_by_person(self, ids: Iterable[int]) -> set[int]:
        """The ``ids`` whose content had its human label removed by a person."""
        rows = self._rows_in(
            "SELECT i.id FROM images i JOIN unlabelled_hashes u ON u.hash = i.hash "
            "WHERE i.id IN ({marks})",
            _ints(ids),
        )
        return {r[0] for r in rows}

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

    def ids_under(self, folder: str, itself: bool = False) -> list[int]:
        """Ids of the images whose path lies under ``folder`` (an absolute path); with
        ``itself``, the image at that path too."""
        prefix = folder.rstrip(os.sep) + os.sep
        rows = self.conn.execute(
            "SELECT id FROM images WHERE substr(path, 1, ?) = ? OR (? AND path = ?)",
            (len(prefix), prefix, itself, folder),
        )
        return [r[0] for r in rows]

    def images_per_tag(self) -> dict[str | None, int]:
        """predicted label (None: unknown) -> number of images tagged so."""
        rows = self.conn.execute("SELECT label, COUNT(*) FROM tags GROUP BY label")
        return {r[0]: r[1] for r in rows}

    def tag_labels(self) -> dict[int, str]:
        """image id -> its predicted label, for the images tagged with one (not unknown)."""
        rows = self.conn.execute("SELECT image_id, label FROM tags WHERE label IS NOT NULL")
        return {r[0]: r[1] for r in rows}

    def label_rows(self) -> list[LabelExport]:
        """Every human label with its image's path, by path."""
        rows = self.conn.execute(
            "SELECT i.path, l.label, l.origin, l.at FROM labels l "
            "JOIN images i ON i.id = l.image_id ORDER BY i.path"
        )
        return [LabelExport(*r) for r in rows]

    def labelled_images(self) -> list[LabelledImage]:
        """Every human-labelled image with its size and label, by path."""
        rows = self.conn.execute(
            "SELECT i.id, i.path, i.width, i.height, l.label FROM labels l "
            "JOIN images i ON i.id = l.image_id ORDER BY i.path"
        )
        return [LabelledImage(*r) for r in rows]

    def tag_rows(self) -> list[TagExport]:
        """Every predicted tag with its image's path, by path."""
        rows = self.conn.execute(
            "SELECT i.path, t.label, t.confidence, t.head, t.at FROM tags t "
            "JOIN images i ON i.id = t.image_id ORDER BY i.path"
        )
        return [TagExport(*r) for r in rows]

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
        rows = self._rows_in(
            "SELECT image_id, top FROM predictions WHERE image_id IN ({marks})", _ints(ids)
        )
        return {r[0]: [(n, float(s)) for n, s in json.loads(r[1])] for r in rows}


def browse_query(
    filter: str, label: str | None, after: int, limit: int
) -> tuple[str, tuple[int | str, ...]]:
    """The id query of one browse page: always a range scan on an integer key.

    Filters (BROWSE_FILTERS): all, labelled, unlabelled, tagged (predicted, not human),
    unknown (the tagger abstained); ``label`` narrows to one human label. Keyset
    paging, no OFFSET: the last page of 100,000 images costs what the first does.
    """
    no_label = "NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = {col})"
    if label is not None:
        return (
            "SELECT image_id FROM labels WHERE label = ? AND image_id > ? "
            "ORDER BY image_id LIMIT ?",
            (label, after, limit),
        )
    if filter == "labelled":
        return (
            "SELECT image_id FROM labels WHERE image_id > ? ORDER BY image_id LIMIT ?",
            (after, limit),
        )
    if filter == "unlabelled":
        return (
            f"SELECT i.id FROM images i WHERE i.id > ? AND {no_label.format(col='i.id')} "
            "ORDER BY i.id LIMIT ?",
            (after, limit),
        )
    if filter in ("tagged", "unknown"):
        test = "t.label IS NULL" if filter == "unknown" else "t.label IS NOT NULL"
        return (
            f"SELECT t.image_id FROM tags t WHERE t.image_id > ? AND {test} "
            f"AND {no_label.format(col='t.image_id')} ORDER BY t.image_id LIMIT ?",
            (after, limit),
        )
    return "SELECT id FROM images WHERE id > ? ORDER BY id LIMIT ?", (after, limit)


# Ids (or paths) per IN (...) list: under the 999 variables that older SQLite builds allow.
IN_CHUNK = 900


# Each label once, the spelling used first before the others.
_FIRST_SPELLINGS = "SELECT label FROM labels GROUP BY label ORDER BY MIN(at), label"
_BOX_SPELLINGS = (
    "SELECT label FROM boxes WHERE label IS NOT NULL GROUP BY label ORDER BY MIN(created), label"
)
_KEPT_SPELLINGS = "SELECT label FROM kept_labels GROUP BY label ORDER BY MIN(at), label"
_KEPT_BOX_SPELLINGS = (
    "SELECT label FROM kept_boxes WHERE label IS NOT NULL GROUP BY label "
    "ORDER BY MIN(created), label"
)


def _ints(ids: Iterable[int]) -> list[int]:
    return [int(i) for i in ids]  # numpy integers are not SQLite parameters


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
