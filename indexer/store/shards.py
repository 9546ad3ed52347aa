"""Vector shards: what distributed embedding workers write and the library merges.

A shard is two files in the shard directory, written by one worker:

    shard-<uuid>.npy    float32 (n_new, dim): the vectors of the newly embedded files
    shard-<uuid>.json   the manifest: model key, and one row per file in job order
                        (path, size, mtime_ns, content hash, kind, width, height,
                        the catalog id whose vector is reused, the error, the top
                        class guesses, the row of its vector in the .npy)

The vectors are written first and the manifest last, each aside and renamed into
place, so a manifest names a complete shard: a killed job leaves complete shards
and, at worst, an orphan ``.npy`` or ``.tmp`` file that the next run deletes.

Merging goes through the batch indexer's commit (the catalog's ``write_images``,
``move_image`` and ``remove_images`` in transactions), so ids, moves, copies and
errors behave exactly as in the single-process path. A merged shard is deleted;
shards left behind by a killed job are recovered by the next run before it plans,
for the files whose size and mtime are still those the shard recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.indexer.loading import FileJob, LoadedFile
from lookalike.indexer.scan import FileEntry
from lookalike.indexer.store.catalog import NewImage

log = logging.getLogger(__name__)

SHARD_FORMAT = 1
NEW, REUSE, ERROR = "new", "reuse", "error"


def shard_dir_for(library_root: str | Path, base: str | Path | None = None) -> Path:
    """Where a library's shards go: ``base`` (shared storage on a cluster) or the library.

    Under a shared ``base`` each library gets its own folder, named after its path,
    so two libraries never merge each other's shards.
    """
    root = Path(library_root).absolute()
    if base is None:
        return root / "shards"
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return Path(base).expanduser().absolute() / f"{root.name}-{tag}"


def _row(loaded: LoadedFile, kind: str, vector_row: int, top) -> dict:
    e = loaded.job.entry
    return {
        "path": e.path,
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "hash": loaded.digest,
        "kind": kind,
        "width": loaded.width,
        "height": loaded.height,
        "old_id": loaded.job.old_id,
        "old_hash": loaded.job.old_hash,
        "reuse_id": loaded.reuse_id,
        "error": loaded.error,
        "top": [[n, float(s)] for n, s in top] if top is not None else None,
        "vector": vector_row,
    }


def write_shard(
    directory: Path,
    model_key: str,
    dim: int,
    loaded: Sequence[LoadedFile],
    embedded: Sequence[tuple[LoadedFile, NewImage]],
    stats: dict | None = None,
) -> Path:
    """Write one shard (vectors first, manifest last); returns the manifest's path.

    Args:
        loaded: every file of the shard in job order (new, reused or failed).
        embedded: the new ones with their catalog rows (vector, class guesses).
        stats: per-stage seconds and the like, kept in the manifest for the benchmark.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"shard-{uuid.uuid4().hex}"
    by_path = {b.job.entry.path: (i, new) for i, (b, new) in enumerate(embedded)}
    vectors = np.zeros((len(embedded), dim), dtype=np.float32)
    rows = []
    for item in loaded:
        hit = by_path.get(item.job.entry.path)
        if hit is not None:
            i, new = hit
            vectors[i] = new.vector
            rows.append(_row(item, NEW, i, new.top))
        elif item.error is not None:
            rows.append(_row(item, ERROR, -1, None))
        else:
            rows.append(_row(item, REUSE, -1, None))
    manifest = {
        "format": SHARD_FORMAT,
        "model": model_key,
        "dim": dim,
        "vectors": f"{name}.npy",
        "created": time.time(),
        "host": os.uname().nodename,
        "stats": stats or {},
        "rows": rows,
    }
    _write_aside(directory / f"{name}.npy", lambda f: np.save(f, vectors))
    _write_aside(
        directory / f"{name}.json", lambda f: f.write(json.dumps(manifest).encode("utf-8"))
    )
    return directory / f"{name}.json"


def _write_aside(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Shard:
    """A complete shard read back from disk."""

    manifest: Path
    model: str
    dim: int
    rows: list[dict]
    stats: dict
    created: float

    @classmethod
    def read(cls, manifest: str | Path) -> Shard:
        manifest = Path(manifest)
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        if doc.get("format") != SHARD_FORMAT:
            raise ValueError(f"{manifest}: shard format {doc.get('format')}, want {SHARD_FORMAT}")
        return cls(
            manifest, doc["model"], doc["dim"], doc["rows"], doc.get("stats", {}), doc["created"]
        )

    @property
    def vectors_path(self) -> Path:
        return self.manifest.with_suffix(".npy")

    @property
    def embedded(self) -> int:
        return sum(1 for r in self.rows if r["kind"] == NEW)

    def vectors(self) -> np.ndarray:
        """The shard's vectors, memory-mapped (never more than one shard in memory)."""
        vectors = np.load(self.vectors_path, mmap_mode="r")
        if vectors.ndim != 2 or vectors.shape != (self.embedded, self.dim):
            raise ValueError(f"{self.vectors_path}: shape {vectors.shape} does not fit the rows")
        return vectors

    def writes(self, rows: Sequence[dict] | None = None) -> list[tuple[str, object]]:
        """The rows as the batch indexer's commit takes them (see BatchIndexer._commit)."""
        vectors = self.vectors()
        out: list[tuple[str, object]] = []
        for r in self.rows if rows is None else rows:
            job = FileJob(
                FileEntry(r["path"], r["size"], r["mtime_ns"]), r["old_id"], r["old_hash"]
            )
            if r["kind"] == NEW:
                top = [(n, s) for n, s in r["top"]] if r["top"] is not None else None
                item = LoadedFile(job, r["hash"], None, r["width"], r["height"], None, None)
                vector = np.array(vectors[r["vector"]], dtype=np.float32)
                new = NewImage(
                    r["path"],
                    r["size"],
                    r["mtime_ns"],
                    r["hash"],
                    r["width"],
                    r["height"],
                    vector,
                    top,
                )
                out.append((NEW, (item, new)))
            elif r["kind"] == ERROR:
                out.append((ERROR, LoadedFile(job, r["hash"], None, 0, 0, None, r["error"])))
            else:
                out.append((REUSE, LoadedFile(job, r["hash"], None, 0, 0, r["reuse_id"], None)))
        return out

    def remove(self) -> None:
        """Delete the manifest first: a half-deleted shard is an orphan, never a shard."""
        self.manifest.unlink(missing_ok=True)
        self.vectors_path.unlink(missing_ok=True)


def complete_shards(directory: Path) -> list[Path]:
    """Manifests in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("shard-*.json") if p.with_suffix(".npy").exists()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def remove_orphans(directory: Path) -> int:
    """Delete vectors without a manifest and interrupted writes; returns how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for p in directory.glob(".shard-*.tmp"):
        p.unlink(missing_ok=True)
        removed += 1
    for p in directory.glob("shard-*.npy"):
        if not p.with_suffix(".json").exists():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def recoverable_rows(
    shard: Shard, current: dict[str, FileEntry], known: dict[str, tuple[int, int, int, str]]
) -> list[dict]:
    """The embedded rows of a leftover shard still worth merging.

    A row counts when its file is among this run's files with the size and mtime the
    shard recorded, and the catalog does not already hold exactly that content (the
    shard was merged before the job died but not yet deleted). Reused and failed rows
    are not kept: they cost no embedding and the run decides them again.
    """
    rows = []
    for r in shard.rows:
        if r["kind"] != NEW:
            continue
        entry = current.get(r["path"])
        if entry is None or entry.size != r["size"] or entry.mtime_ns != r["mtime_ns"]:
            continue
        old = known.get(r["path"])
        if old is not None and (old[1], old[2], old[3]) == (r["size"], r["mtime_ns"], r["hash"]):
            continue
        r = dict(r)
        r["old_id"], r["old_hash"] = (old[0], old[3]) if old is not None else (None, None)
        rows.append(r)
    return rows


def iter_leftovers(directory: Path, model_key: str) -> Iterator[Shard]:
    """Complete shards left by an earlier (killed) job of the same model."""
    for manifest in complete_shards(directory):
        try:
            shard = Shard.read(manifest)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable shard %s: %s", manifest, e)
            continue
        if shard.model != model_key:
            log.warning("ignoring shard %s: made by another model", manifest)
            continue
        yield shard
