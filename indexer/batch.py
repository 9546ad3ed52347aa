"""Incremental, resumable batch indexing of folders into a library.

Only new or changed files are embedded; files whose content is already in the
catalog (moved, renamed or copied) reuse the stored vector. Loader threads read,
hash, decode and preprocess ahead of the model (lookalike.indexer.loading). Results
are committed in small transactions, so an interrupted run keeps what it finished and
a rerun does the rest. Files deleted from a folder that was read are removed (their
human labels kept by content, lookalike.indexer.store.catalog); the images under a
folder that could not be read stay, marked offline, unless the run prunes them.
``lookalike index`` and the web's index jobs run this engine through
lookalike.indexer.pipeline.update_library.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from lookalike.indexer.identity import Identity
from lookalike.indexer.images import DEFAULT_MAX_PIXELS, TOO_LARGE
from lookalike.indexer.label_text import BadLabel, check_label
from lookalike.indexer.loading import FileJob, LoadedFile, embed_loaded, load_job, read_ahead
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.progress import RunProgress, progress_bar
from lookalike.indexer.scan import FileEntry, Skipped, scan
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.image_marks import forget_removed, removed_paths
from lookalike.indexer.store.library import Library

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 2.0


@dataclass
class IndexOptions:
    batch_size: int = 8  # small batches are faster on CPU (measured: 8 beats 32)
    workers: int = 2  # loader threads (read, hash, decode, preprocess)
    max_pixels: int = DEFAULT_MAX_PIXELS
    labels_from_folders: bool = False
    # With labels_from_folders: label at most this many images of each folder (the first
    # by path; None: all), and never label images in folders of these names (clutter).
    labels_per_class: int | None = None
    unlabelled_folders: tuple[str, ...] = ()
    progress: bool = True
    retry_errors: bool = False  # re-read files that failed before and have not changed
    prune: bool = False  # remove the images of folders that are offline (not only deleted ones)


class Offline(NamedTuple):
    """A folder (or root) that could not be read: its images stay, marked offline."""

    path: str
    reason: str
    images: int  # images kept under it


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    copied: int = 0  # new paths whose content was already indexed (vector reused)
    removed: int = 0
    unchanged: int = 0
    labelled: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    offline: list[Offline] = field(default_factory=list)
    seconds: float = 0.0
    embedded: int = 0

    @property
    def images_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "moved": self.moved,
            "copied": self.copied,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "labelled": self.labelled,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "skipped_total": len(self.skipped),  # the web job's summary shows only the first
            "offline": [o._asdict() for o in self.offline],
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 1),
            "embedded": self.embedded,
        }


class BatchIndexer:
    """Indexes folders into a library with one embedder (see module docstring)."""

    def __init__(
        self,
        library: Library,
        embedder: Embedder,
        options: IndexOptions | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.library = library
        self.catalog = library.catalog
        self.embedder = embedder
        self.options = options or IndexOptions()
        self.on_progress = on_progress
        self._progress: RunProgress | None = None

    def run(self, roots: list[str]) -> IndexSummary:
        start = time.perf_counter()
        summary = IndexSummary()
        self.library.check_model(self.embedder.info)
        self._progress = RunProgress(self.library.root, roots)  # for the web app to show
        self._progress.update()
        try:
            entries, summary.skipped = scan(roots, exclude=[self.library.root])
            entries, planned = self._prepared(roots, entries, summary)
            known = self.catalog.known_files()
            jobs, missing = self._plan(entries, known, planned, summary)
            by_hash: dict[str, list[int]] = {}
            for _path, (image_id, _s, _m, digest) in known.items():
                by_hash.setdefault(digest, []).append(image_id)
            missing_ids = {known[p][0] for p in missing}
            self._report(0, len(jobs))
            self._process(jobs, by_hash, missing_ids, summary)
            self._remove(missing_ids, summary)
            if self.options.labels_from_folders:
                summary.labelled = self._label_from_folders(entries, roots)
            self._record_roots(roots)
            self.library.sync_index()
        finally:
            self._progress.close()
        summary.seconds = time.perf_counter() - start
        return summary

    def _report(self, done: int, total: int) -> None:
        """Progress after a commit: to the caller and to other processes (the web app)."""
        if self._progress is not None:
            self._progress.update(done, total)
        if self.on_progress:
            self.on_progress(done, total)

    def _prepared(
        self, roots: list[str], entries: list[FileEntry], summary
    ) -> tuple[list[FileEntry], list[str]]:
        """The files found, less those a person removed from the library (unless named
        themselves: they come back), and the folders to plan with: the run's, and the
        earlier runs' inside them (a gone one is offline: _nested_roots). Both engines."""
        nested = self._nested_roots(roots)
        if not self.options.prune:
            summary.skipped.extend(_gone_roots(nested))
        removed = removed_paths(self.catalog)  # taken out of the library by a person
        named = {_root_prefix(r) for r in roots} & removed  # files named again: back
        if named:
            with self.catalog.transaction() as conn:
                forget_removed(conn, sorted(named))
        return [e for e in entries if e.path not in removed - named], [*roots, *nested]

    # -- the folders indexed --------------------------------------------------------
    def _recorded_roots(self) -> list[str]:
        """The folders earlier runs were given (ROOTS_KEY), as absolute paths."""
        try:
            got = json.loads(self.catalog.get_meta(ROOTS_KEY) or "[]")
        except ValueError:
            return []
        return [str(r) for r in got if isinstance(r, str)] if isinstance(got, list) else []

    def _nested_roots(self, roots: list[str]) -> list[str]:
        """Folders an earlier run was given that lie inside one of this run's: if such a
        folder is gone or empty now (an unmounted disk under /media/USER), its images
        are offline, as when it is named itself, not removed."""
        prefixes = [_root_prefix(r) for r in roots]
        return [r for r in self._recorded_roots() if r not in prefixes and _under(r, prefixes)]

    def _record_roots(self, roots: list[str]) -> None:
        """Remember the folders of this run (with the earlier ones) for _nested_roots."""
        folders = {_root_prefix(r) for r in roots if os.path.isdir(_root_prefix(r))}
        every = sorted(set(self._recorded_roots()) | folders)
        if len(every) > MAX_ROOTS:  # the most recent run's first; then the rest, shortest
            every = sorted(folders) + sorted(set(every) - folders, key=len)
            every = every[:MAX_ROOTS]
        with self.catalog.transaction() as conn:
            self.catalog.set_meta(ROOTS_KEY, json.dumps(every), conn)

    # -- planning --------------------------------------------------------------
    def _plan(self, entries, known, roots, summary) -> tuple[list[FileJob], list[str]]:
        """The files to (re)index, and the known paths gone from the run's folders.

        A known path not seen under a folder that was read is gone (deleted or moved);
        one under a folder or root that could not be read is offline: kept, and marked
        so until its folder is back (or removed with ``prune``).
        """
        errors = {} if self.options.retry_errors else self.catalog.known_errors()
        seen = set()
        jobs = []
        for e in entries:
            seen.add(e.path)
            old = known.get(e.path)
            if old is not None:
                if old[1] == e.size and old[2] == e.mtime_ns:
                    summary.unchanged += 1
                else:
                    jobs.append(FileJob(e, old[0], old[3]))
                continue
            err = errors.get(e.path)
            if err is not None and err[0] == e.size and err[1] == e.mtime_ns:
                if err[3] is None or err[3] >= self.options.max_pixels:
                    summary.skipped.append(Skipped(e.path, f"{err[2]} {EARLIER}"))
                    continue
            jobs.append(FileJob(e, None, None))
        prefixes = [_root_prefix(r) for r in roots]
        if not self.options.prune:
            summary.skipped.extend(_empty_roots(prefixes, known))
        unread = {} if self.options.prune else {s.path: s for s in summary.skipped if s.unread}

        def gone(p: str) -> bool:
            return p not in seen and _under(p, prefixes) and _within(p, unread) is None

        stale_errors = [p for p in errors if gone(p)]
        if stale_errors:  # failed files that were deleted since: nothing left to report
            with self.catalog.transaction() as conn:
                self.catalog.forget_errors(conn, stale_errors)
        self._mark_offline(known, seen, unread, summary)
        return jobs, [p for p in known if gone(p)]

    def _mark_offline(self, known, seen: set[str], unread: dict[str, Skipped], summary) -> None:
        """Mark the known images under unread folders offline, and those seen again back."""
        under: dict[str, list[int]] = {}
        for p, (image_id, *_rest) in known.items():
            folder = None if p in seen else _within(p, unread)
            if folder is not None:
                under.setdefault(folder, []).append(image_id)
        for folder, ids in sorted(under.items()):
            summary.offline.append(Offline(folder, unread[folder].reason, len(ids)))
        offline = [i for ids in under.values() for i in ids]
        was = self.catalog.offline_ids()
        back = [known[p][0] for p in seen if p in known and known[p][0] in was]
        if offline or back:
            with self.catalog.transaction() as conn:
                self.catalog.set_offline(conn, back, offline=False)
                self.catalog.set_offline(conn, offline, offline=True)

    # -- the pipeline -----------------------------------------------------------
    def _process(self, jobs: list[FileJob], by_hash, missing_ids: set[int], summary) -> None:
        bar = progress_bar(len(jobs), self.options.progress)
        batch: list[LoadedFile] = []
        writes: list[tuple[str, object]] = []
        last_commit = time.monotonic()
        try:
            for loaded in self._load_all(jobs, by_hash):
                bar.update(1)
                if loaded.error is not None:
                    writes.append(("error", loaded))
                elif loaded.pixels is None:
                    writes.append(("reuse", loaded))
                else:
                    batch.append(loaded)
                if len(batch) >= self.options.batch_size:
                    writes.extend(("new", item) for item in self._embed(batch))
                    summary.embedded += len(batch)
                    batch = []
                if time.monotonic() - last_commit > COMMIT_EVERY_S:
                    self._commit(writes, missing_ids, summary)
                    writes, last_commit = [], time.monotonic()
                    self._report(bar.n, len(jobs))
            if batch:
                writes.extend(("new", item) for item in self._embed(batch))
                summary.embedded += len(batch)
            self._commit(writes, missing_ids, summary)
            self._report(bar.n, len(jobs))
        finally:
            bar.close()

    def _load_all(self, jobs: list[FileJob], by_hash) -> Iterator[LoadedFile]:
        """Loaded jobs in order, with a bounded number in flight in the loader threads."""
        window = max(4 * self.options.batch_size, 4 * self.options.workers)
        yield from read_ahead(
            lambda job: self._load(job, by_hash), jobs, self.options.workers, window
        )

    def _load(self, job: FileJob, by_hash) -> LoadedFile:
        return load_job(job, self.embedder, self.options.max_pixels, by_hash)

    def _embed(self, batch: list[LoadedFile]) -> list[tuple[LoadedFile, NewImage]]:
        return embed_loaded(self.embedder, batch)

    # -- writing ----------------------------------------------------------------
    def _commit(self, writes, missing_ids: set[int], summary: IndexSummary) -> None:
        if not writes:
            return
        cat = self.catalog
        with cat.transaction() as conn:
            new_items = [w[1] for w in writes if w[0] == "new"]
            cat.write_images(conn, [new for _b, new in new_items])
            for _b, _new in new_items:
                if _b.job.old_id is None:
                    summary.added += 1
                else:
                    summary.updated += 1
            for kind, item in writes:
                if kind == "error":
                    e = item.job.entry
                    refused = self.options.max_pixels if item.error.startswith(TOO_LARGE) else None
                    cat.record_error(conn, e.path, e.size, e.mtime_ns, item.error, refused)
                    summary.skipped.append(Skipped(e.path, item.error))
                elif kind == "reuse":
                    self._reuse(conn, item, missing_ids, summary)
            cat.set_identities(conn, _identities(writes))

    def _reuse(self, conn, item: LoadedFile, missing_ids: set[int], summary: IndexSummary) -> None:
        """Content already indexed: a touched file, a moved file, or a copy."""
        e = item.job.entry
        cat = self.catalog
        if item.job.old_id is not None and item.reuse_id == item.job.old_id:
            cat.touch_image(conn, item.job.old_id, e.size, e.mtime_ns)
            summary.unchanged += 1
            return
        source = item.reuse_id
        assert source is not None, "a reused file names the image it reuses"
        if item.job.old_id is None and (source in missing_ids or self._vanished(source)):
            missing_ids.discard(source)
            cat.move_image(conn, source, e.path, e.size, e.mtime_ns)
            summary.moved += 1
            return
        stored = cat.stored_embedding(source)
        if stored is None:  # the source vanished (removed this run): embed it next run
            cat.record_error(conn, e.path, None, None, "content changed during indexing; rerun")
            return
        new = NewImage(
            e.path,
            e.size,
            e.mtime_ns,
            item.digest,
            stored.width,
            stored.height,
            stored.vector,
            stored.top,
        )
        cat.write_images(conn, [new])
        if item.job.old_id is None:
            summary.copied += 1
        else:
            summary.updated += 1

    def _vanished(self, image_id: int) -> bool:
        """An image outside this run's folders whose file is gone (moved from elsewhere)."""
        row = self.catalog.image(image_id)
        return row is not None and not os.path.exists(row["path"])

    def _remove(self, missing_ids: set[int], summary: IndexSummary) -> None:
        if not missing_ids:
            return
        with self.catalog.transaction() as conn:
            self.catalog.remove_images(conn, sorted(missing_ids))
        summary.removed += len(missing_ids)

    def _label_from_folders(self, entries: list[FileEntry], roots: list[str]) -> int:
        """Human labels from each file's folder name; labels set by a person stay, and
        so do the removals a person made (Catalog.unlabelled_by_person). Returns how
        many images got a folder label or a new one."""
        labels = folder_labels(
            entries, roots, self.options.labels_per_class, self.options.unlabelled_folders
        )
        if not labels:
            return 0
        usable = {label: _usable_label(label) for _, label in labels}
        ids = {}
        for path, label in labels:
            row = self.catalog.image_by_path(path)
            if row is not None and usable[label]:
                ids[row["id"]] = label
        existing = self.catalog.label_origins()
        declined = self.catalog.unlabelled_by_person(ids)  # a person removed their label
        items = [
            (i, lab)
            for i, lab in ids.items()
            if existing.get(i, "folder") == "folder" and i not in declined
        ]
        with self.catalog.transaction() as conn:
            return len(self.catalog.set_labels(conn, items, origin="folder"))


EMPTY_ROOT = "an empty folder now (an unmounted disk or share?)"
# After the reason a file failed at an earlier run, when it has not changed since (its
# permissions may have: a rerun does not read it again).
EARLIER = "(at an earlier run; the file is unchanged since: --retry-errors reads it again)"
GONE_ROOT = "indexed before, gone now: an unmounted disk or share?"
ROOTS_KEY = "index_roots"  # meta: the folders index runs were given, a JSON list
MAX_ROOTS = 1000


def _gone_roots(nested: list[str]) -> list[Skipped]:
    """Folders of earlier runs (_nested_roots) that no longer exist: their images are
    offline (kept), not removed."""
    return [Skipped(r, GONE_ROOT, unread=True) for r in nested if not os.path.isdir(r)]


def _empty_roots(prefixes: list[str], known) -> list[Skipped]:
    """Roots that are empty folders but hold indexed images: the mount point of a disk
    or share that is not mounted looks so; its images are offline, not deleted (files
    deleted inside a folder that still holds something are removed as usual)."""
    out = []
    for root in prefixes:
        try:
            with os.scandir(root) as it:
                empty = next(it, None) is None
        except OSError:
            continue  # missing or unreadable: the scan reported it
        if empty and any(_under(p, [root]) for p in known):
            out.append(Skipped(root, EMPTY_ROOT, unread=True))
    return out


def _within(path: str, folders: dict[str, Skipped]) -> str | None:
    """The one of ``folders`` that ``path`` is or lies under (its nearest), or None."""
    while path not in folders:
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path


def _under(path: str, folders: list[str]) -> bool:
    """``path`` is one of ``folders`` or lies under one."""
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _usable_label(label: str) -> bool:
    """Whether a folder name passes the label rule; a warning says why not."""
    try:
        check_label(label)
    except BadLabel as e:
        log.warning("folder %r not taken as a label: %s", label, e.reason)
        return False
    return True


def folder_labels(
    entries: list[FileEntry],
    roots: list[str],
    per_class: int | None = None,
    unlabelled: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """(path, folder name) for the files to label from their folders: files right in a
    root get none, nor files in a folder named in ``unlabelled``; with ``per_class``,
    only that many files of each name, the first by path (the same ones on every run)."""
    labels: dict[str, list[str]] = {}
    for root in roots:
        prefix = _root_prefix(root)
        if not os.path.isdir(prefix):
            continue
        for e in entries:
            if e.path.startswith(prefix + os.sep):
                folder = os.path.dirname(e.path)
                name = os.path.basename(folder)
                if os.path.relpath(folder, prefix) != "." and name not in unlabelled:
                    labels.setdefault(name, []).append(e.path)
    chosen: list[tuple[str, str]] = []
    for name, paths in labels.items():
        paths = sorted(set(paths))
        chosen.extend((p, name) for p in (paths if per_class is None else paths[:per_class]))
    return chosen


def _root_prefix(root: str) -> str:
    return os.path.abspath(os.path.expanduser(str(root))).rstrip(os.sep) or os.sep


def index_paths(
    library: Library, embedder: Embedder, roots: Iterable[str], options: IndexOptions | None = None
) -> IndexSummary:
    """Index ``roots`` into ``library`` as its one writer (see BatchIndexer)."""
    with library.locked():
        return BatchIndexer(library, embedder, options).run(list(roots))


def _identities(writes: list[tuple[str, object]]) -> list[tuple[str, Identity]]:
    """(path, identity) of each file written (lookalike.indexer.identity)."""
    out = []
    for kind, item in writes:
        if kind == "error":
            continue
        loaded = item if isinstance(item, LoadedFile) else item[0]  # type: ignore[index]
        if loaded.identity is not None:
            out.append((loaded.job.entry.path, loaded.identity))
    return out
