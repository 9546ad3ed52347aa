"""Browsing a library page by page: filters, keyset paging, counts, skipped files.

Every page is a range scan on an integer key (or the errors' path) that starts
where the last page ended, so the last page of 100,000 images costs what the first
does: no OFFSET, and the queries use the catalog's indexes
(lookalike.indexer.store.catalog.browse_query; a test checks their query plans).
"""

from __future__ import annotations

from typing import Any

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import BROWSE_FILTERS
from lookalike.webapp.services import LibraryService


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
    if filter not in BROWSE_FILTERS:
        raise BadQuery(f"unknown filter {filter!r}; use one of {', '.join(BROWSE_FILTERS)}")
    ids = svc.catalog.browse_ids(filter, label, after, limit)
    cards = svc.cards(ids)
    images = [cards[i] for i in ids if i in cards]
    return {
        "images": images,
        "next_after": ids[-1] if len(ids) == limit else None,
    }


def errors(svc: LibraryService, after: str = "", limit: int = 60) -> dict[str, Any]:
    rows = svc.catalog.errors_after(after, limit)
    return {
        "errors": [r._asdict() for r in rows],
        "next_after": rows[-1].path if len(rows) == limit else None,
    }


def counts(svc: LibraryService) -> dict[str, int]:
    """How many images each browse filter holds."""
    n = svc.catalog.image_counts()
    return {
        "all": n.images,
        "labelled": n.labelled,
        "unlabelled": n.images - n.labelled,
        "tagged": n.tagged - n.unknown,
        "unknown": n.unknown,
        "errors": n.errors,
    }
