"""Human labels: import and export as CSV, set and remove per image, counts.

A label is a person's statement about an image; its origin says how it came
(folder name, CSV import, set by hand, accepted in cluster review) and it
records when. Predicted tags live in their own table and never overwrite a
label; labelling an image drops its predicted tag.

CSV import is all-or-nothing per row and in one transaction: every row is
checked first (header, known path, duplicates, label text), then the valid
rows are written together -- or, with ``strict``, nothing at all when any row
is bad. The report lists every row taken and every row not taken, with why.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.label_text import BadLabel, check_label
from lookalike.indexer.store.catalog import LabelExport, TagExport
from lookalike.indexer.store.library import Library

ORIGINS = ("folder", "csv", "coco", "yolo", "manual", "review")
__all__ = ["BadLabel", "check_label"]  # the one label rule, from lookalike.indexer.label_text
# A cell starting with one of these is a formula to a spreadsheet: export writes it
# with a leading apostrophe, and import takes one such apostrophe away again.
FORMULA_STARTS = ("=", "+", "-", "@")


class UnknownImages(LookalikeError):
    """Paths that are not images of the library; ``failed``: those of them that were
    indexed but could not be loaded, with why."""

    def __init__(self, paths: Sequence[str], failed: dict[str, str] | None = None) -> None:
        self.paths = list(paths)
        self.failed = dict(failed or {})
        super().__init__(self.worded("index again", "; index them first (lookalike index FOLDER)"))

    def worded(self, reindex: str, unknown_hint: str) -> str:
        """The message, with what to do about a failed file (``reindex``) and after the
        paths not in the library (``unknown_hint``): the CLI's words, or the web's."""
        unknown = [p for p in self.paths if p not in self.failed]
        parts = [f"{p} failed to load ({why})" for p, why in list(self.failed.items())[:3]]
        if len(self.failed) > 3:
            parts.append(f"{len(self.failed) - 3} more failed to load")
        if self.failed:
            parts[-1] += f"; fix or replace the file and {reindex}"
        if unknown:
            shown = ", ".join(unknown[:3])
            if len(unknown) > 3:
                shown += f" and {len(unknown) - 3} more"
            parts.append(f"not in the library: {shown}{unknown_hint}")
        return "; ".join(parts) + "; nothing was changed"


class BadLabelFile(LookalikeError):
    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}; nothing was imported")


def escape_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a formula start gets a leading apostrophe
    (as does a cell already starting with one, so that unescaping is exact)."""
    return "'" + text if text.startswith(FORMULA_STARTS + ("'",)) else text


def unescape_cell(text: str) -> str:
    """The inverse of :func:`escape_cell`."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS + ("'",)):
        return text[1:]
    return text


class Row(NamedTuple):
    line: int  # line number in the file (the header is line 1)
    path: str
    label: str


class RejectedRow(NamedTuple):
    line: int
    path: str
    label: str
    reason: str


@dataclass
class ImportReport:
    """What a CSV import took and did not take, and what it changed."""

    file: str
    taken: list[Row] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    new: int = 0  # images that had no label
    changed: int = 0  # images whose label changed
    unchanged: int = 0  # images that already had this label
    boxes_new: int = 0  # boxes added (COCO import)
    boxes_unchanged: int = 0  # boxes the library had already
    applied: bool = False

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "applied": self.applied,
            "taken": len(self.taken),
            "rejected": [r._asdict() for r in self.rejected],
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "boxes_new": self.boxes_new,
            "boxes_unchanged": self.boxes_unchanged,
        }


def read_csv(path: str | Path) -> list[Row | RejectedRow]:
    """Rows of a ``path,label`` CSV (header required; other columns ignored)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise BadLabelFile(path, e.strerror or str(e)) from e
    except UnicodeDecodeError as e:
        raise BadLabelFile(path, f"not UTF-8 text (byte {e.start})") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise BadLabelFile(path, "empty file; expected a header line path,label")
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("path", "label") if c not in names]
    if missing:
        raise BadLabelFile(
            path, f"missing column {' and '.join(missing)}; the header must name path,label"
        )
    ip, il = names.index("path"), names.index("label")
    base = os.path.dirname(os.path.abspath(path))
    out: list[Row | RejectedRow] = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank line
        p = unescape_cell(fields[ip].strip()) if ip < len(fields) else ""
        label = unescape_cell(fields[il].strip()) if il < len(fields) else None
        if not p:
            out.append(RejectedRow(line, "", label or "", "missing path"))
        elif label is None:
            out.append(RejectedRow(line, p, "", "missing label column"))
        else:
            full = os.path.normpath(os.path.join(base, os.path.expanduser(p)))
            out.append(Row(line, full, label))
    return out


def plan_import(
    library: Library, path: str | Path, parsed: Sequence[Row | RejectedRow] | None = None
) -> tuple[ImportReport, list[tuple[int, str]]]:
    """Check every row (of the CSV at ``path``, or ``parsed`` from it); returns the
    report and the (image id, label) pairs to write.

    A path listed twice with the same label: the first row is taken, the others
    are duplicates. A path listed with different labels is ambiguous: none of its
    rows is taken.
    """
    catalog = library.catalog
    report = ImportReport(file=str(path))
    candidates: dict[str, list[tuple[Row, int]]] = {}
    for row in read_csv(path) if parsed is None else parsed:
        if isinstance(row, RejectedRow):
            report.rejected.append(row)
            continue
        try:
            label = check_label(row.label)
        except BadLabel as e:
            report.rejected.append(RejectedRow(row.line, row.path, row.label, e.reason))
            continue
        image = catalog.image_by_path(row.path)
        if image is None:
            reason = "unknown path (not an image of the library)"
            report.rejected.append(RejectedRow(row.line, row.path, row.label, reason))
            continue
        candidates.setdefault(row.path, []).append((Row(row.line, row.path, label), image["id"]))
    current = catalog.labels()
    items: list[tuple[int, str]] = []
    for rows in candidates.values():
        first, image_id = rows[0]
        if len({r.label for r, _ in rows}) > 1:
            lines = ", ".join(str(r.line) for r, _ in rows)
            for r, _ in rows:
                reason = f"the same path has different labels on lines {lines}"
                report.rejected.append(RejectedRow(r.line, r.path, r.label, reason))
            continue
        for r, _ in rows[1:]:
            reason = f"duplicate of line {first.line}"
            report.rejected.append(RejectedRow(r.line, r.path, r.label, reason))
        report.taken.append(first)
        items.append((image_id, first.label))
        old = current.get(image_id)
        if old is None:
            report.new += 1
        elif old != first.label:
            report.changed += 1
        else:
            report.unchanged += 1
    report.rejected.sort(key=lambda r: r.line)
    report.taken.sort(key=lambda r: r.line)
    return report, items


def import_csv(library: Library, path: str | Path, strict: bool = False) -> ImportReport:
    """Validate every row, then write the valid ones in one transaction.

    With ``strict``, a file with any bad row changes nothing.
    """
    return apply_rows(library, path, read_csv(path), strict, "csv")


def apply_rows(
    library: Library,
    path: str | Path,
    rows: Sequence[Row | RejectedRow],
    strict: bool = False,
    origin: str = "csv",
) -> ImportReport:
    """Check ``rows`` (read from ``path``), then write the valid ones in one
    transaction (with ``strict``, none when any is bad)."""
    report, items = plan_import(library, path, rows)
    if items and not (strict and report.rejected):
        with library.catalog.transaction() as conn:
            write_labels(library, conn, items, origin)
        report.applied = True
    return report


def set_labels(
    library: Library, image_ids: Sequence[int], label: str, origin: str = "manual"
) -> int:
    """Give the images one human label (replacing theirs); returns how many changed."""
    if origin not in ORIGINS:
        raise LookalikeError(f"unknown label origin {origin!r}; use one of {', '.join(ORIGINS)}")
    label = check_label(label)
    ids = sorted({int(i) for i in image_ids})
    _check_ids(library, ids)
    with library.catalog.transaction() as conn:
        before = library.catalog.labels_of(ids)  # read inside the write transaction
        write_labels(library, conn, [(i, label) for i in ids], origin)
        after = library.catalog.labels_of(ids)  # the spelling stored (label_text)
    return sum(1 for i in ids if before.get(i) != after.get(i))


def remove_labels(library: Library, image_ids: Sequence[int]) -> int:
    """Remove the images' human labels; returns how many had one."""
    ids = sorted({int(i) for i in image_ids})
    _check_ids(library, ids)
    catalog = library.catalog
    with catalog.transaction() as conn:
        n = len(catalog.labels_of(ids))
        catalog.remove_labels(conn, ids)
        catalog.bump_labels_version(conn)
    return n


def resolve_paths(library: Library, paths: Iterable[str]) -> list[int]:
    """Catalog ids of image paths (relative to the working directory) or of every image
    under folder paths; UnknownImages (nothing changed) when any is not in the library."""
    ids: list[int] = []
    unknown: list[str] = []
    for p in paths:
        full = os.path.abspath(os.path.expanduser(p))
        row = library.catalog.image_by_path(full)
        if row is not None:
            ids.append(row["id"])
            continue
        under = library.catalog.ids_under(full)
        if under:
            ids.extend(under)
        else:
            unknown.append(p)
    if unknown:
        errors = {p: library.catalog.error_of(_full(p)) for p in unknown}
        raise UnknownImages(unknown, {p: e for p, e in errors.items() if e is not None})
    return ids


def _full(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


class LabelCount(NamedTuple):
    label: str
    human: int  # images a person labelled so
    predicted: int  # images tagged so by the last tag run


class LabelCounts(NamedTuple):
    counts: list[LabelCount]  # most human labels first, then by name
    unknown: int  # images the last tag run left unknown


def label_counts(library: Library) -> LabelCounts:
    """Per label: human and predicted counts; and the number of images tagged unknown."""
    human = dict(library.catalog.label_counts())
    tags = library.catalog.images_per_tag()
    predicted = {k: n for k, n in tags.items() if k is not None}
    unknown = tags.get(None, 0)
    names = sorted(set(human) | set(predicted), key=lambda k: (-human.get(k, 0), k))
    return LabelCounts(
        [LabelCount(k, human.get(k, 0), predicted.get(k, 0)) for k in names], unknown
    )


EXPORT_COLUMNS = LabelExport._fields
TAG_COLUMNS = TagExport._fields


def export_rows(library: Library, tags: bool = False) -> list[LabelExport] | list[TagExport]:
    """Human labels (path, label, origin, at), or with ``tags`` the predicted tags."""
    return library.catalog.tag_rows() if tags else library.catalog.label_rows()


def write_csv(rows: Sequence[LabelExport | TagExport], out: TextIO, tags: bool = False) -> None:
    """CSV that ``import_csv`` reads back (it ignores the extra columns)."""
    columns = TAG_COLUMNS if tags else EXPORT_COLUMNS
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        doc = row._asdict()
        doc["path"] = escape_cell(row.path)
        doc["label"] = escape_cell(row.label or "")
        doc["at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(row.at))
        if isinstance(row, TagExport):
            doc["confidence"] = f"{row.confidence:.4f}"
        writer.writerow(doc)


def write_labels(
    library: Library, conn: sqlite3.Connection, items: list[tuple[int, str]], origin: str
) -> None:
    """Write checked (image id, label) pairs in the caller's transaction."""
    catalog = library.catalog
    catalog.set_labels(conn, items, origin)
    # A human label replaces any predicted tag of the image.
    catalog.remove_tags(conn, [i for i, _ in items])
    catalog.bump_labels_version(conn)


def _check_ids(library: Library, ids: list[int]) -> None:
    known = library.catalog.paths(ids)
    missing = [str(i) for i in ids if i not in known]
    if missing:
        raise UnknownImages([f"image id {i}" for i in missing])
