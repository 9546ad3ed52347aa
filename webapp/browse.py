"""Browsing a library page by page: filters, keyset paging, counts, skipped files.

Every page is a range scan on an integer key (or the errors' path) that starts
where the last page ended, so the last page of 100,000 images costs what the first
does: no OFFSET, and the queries below use the catalog's indexes (a test checks
their query plans).
"""

from __future__ import annotations

from typing import Any

from lookalike.indexer.errors import BadQuery
from lookalike.webapp.services import LibraryService

FILTERS = ("all", "labelled", "unlabelled", "tagged", "unknown")


def browse(
    svc: LibraryService,
    filter: str = "all",
    label: str | None = None,
    after: int = 0,
    limit: int = 60,
) -> dict[str, Any]:
    """One page of images in id order, after the id ``after``.

    Filters: all, labelled, unlabelled, tagged (predicted, not human), unknown
    (the tagger abstained); ``label`` narrows to one human label.
    """
    if filter not in FILTERS:
        raise BadQuery(f"unknown filter {filter!r}; use one of {', '.join(FILTERS)}")
    sql, args = browse_query(filter, label, after, limit)
    ids = [r[0] for r in svc.db.execute(sql, args)]
    cards = svc.cards(ids)
    images = [cards[i] for i in ids if i in cards]
    return {
        "images": images,
        "next_after": ids[-1] if len(ids) == limit else None,
    }


def errors(svc: LibraryService, after: str = "", limit: int = 60) -> dict[str, Any]:
    rows = svc.db.execute(
        "SELECT path, error, at FROM errors WHERE path > ? ORDER BY path LIMIT ?",
        (after, limit),
    ).fetchall()
    return {
        "errors": [dict(r) for r in rows],
        "next_after": rows[-1]["path"] if len(rows) == limit else None,
    }


def counts(svc: LibraryService) -> dict[str, int]:
    """How many images each browse filter holds."""
    db = svc.db
    total = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    labelled = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    tagged, unknown = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(t.label IS NULL), 0) FROM tags t "
        "WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = t.image_id)"
    ).fetchone()
    skipped = db.execute("SELECT COUNT(*) FROM errors").fetchone()[0]
    return {
        "all": total,
        "labelled": labelled,
        "unlabelled": total - labelled,
        "tagged": tagged - unknown,
        "unknown": unknown,
        "errors": skipped,
    }


def browse_query(
    filter: str, label: str | None, after: int, limit: int
) -> tuple[str, tuple[Any, ...]]:
    """The id query of one browse page: always a range scan on an integer key."""
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
