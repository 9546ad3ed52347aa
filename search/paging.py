"""One page of a search's results, optionally narrowed to a browse filter.

A search asks the index for the nearest ``depth`` images and keeps those the filter
holds (``all``, ``labelled``, ``unlabelled``, ``tagged``, ``unknown``, or one human
label: the library page's filters). The first depth follows the filter's share of
the library (a filter holding a tenth of it starts ten times deeper, with a margin);
when too few are left for the page asked (and one more, to tell whether a next page
exists), it asks again four times deeper, up to ``MAX_DEPTH`` candidates or the whole
library. So a filter that holds few images of a large library finds those among the
nearest ``MAX_DEPTH`` images only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import BROWSE_FILTERS, Catalog
from lookalike.search.searcher import SearchResult

# Candidates at most for one filtered page. On the 3,819-image bench library a page of
# a 10-image label (the whole library searched) took 2.0x the wall and 1.9x the CPU
# time of a plain page, `unlabelled` 1.1x (scripts/bench_search_filters.py).
MAX_DEPTH = 10_000
MARGIN = 1.5  # a filter's images are not spread evenly over the neighbours
FILTERS = BROWSE_FILTERS


class Page(NamedTuple):
    results: list[SearchResult]
    more: bool  # a next page exists


def check_filter(filter: str, label: str | None) -> None:
    if filter not in FILTERS:
        raise BadQuery(f"unknown filter {filter!r}; use one of {', '.join(FILTERS)}")
    if label is not None and not label.strip():
        raise BadQuery("an empty label filter; leave it out for any label")


def kept_ids(catalog: Catalog, ids: Sequence[int], filter: str, label: str | None) -> set[int]:
    """The ids among ``ids`` that the filter holds (browse_query's meaning)."""
    if filter == "all" and label is None:
        return set(ids)
    labels = catalog.labels_of(ids)
    if label is not None:
        return {i for i, name in labels.items() if name == label}
    if filter == "labelled":
        return set(labels)
    if filter == "unlabelled":
        return {i for i in ids if i not in labels}
    tags = catalog.tag_rows_of([i for i in ids if i not in labels])
    unknown = filter == "unknown"
    return {i for i, row in tags.items() if (row["label"] is None) == unknown}


def held(catalog: Catalog, filter: str, label: str | None) -> int:
    """How many images of the library the filter holds."""
    if label is not None:
        return dict(catalog.label_counts()).get(label, 0)
    counts = catalog.image_counts()
    return {
        "all": counts.images,
        "labelled": counts.labelled,
        "unlabelled": counts.images - counts.labelled,
        "tagged": counts.tagged - counts.unknown,
        "unknown": counts.unknown,
    }[filter]


def search_page(
    run: Callable[[int], list[SearchResult]],
    catalog: Catalog,
    page: int,
    per_page: int,
    filter: str = "all",
    label: str | None = None,
) -> Page:
    """Page ``page`` (from 1) of ``per_page`` results of ``run(depth)`` (a search for
    the nearest ``depth`` images, best first) that the filter holds."""
    check_filter(filter, label)
    label = catalog.stored_label(label)  # as labels match: KANGAROO finds kangaroo
    if page < 1:
        raise BadQuery(f"page must be at least 1, not {page}")
    start = (page - 1) * per_page
    total = catalog.count()
    if filter == "all" and label is None:  # the nearest start + per_page: one search
        found = run(min(start + per_page, MAX_DEPTH))
        more = len(found) >= start + per_page and start + per_page < min(total, MAX_DEPTH)
        return Page(found[start : start + per_page], more)
    need = start + per_page + 1  # one more: is there a next page?
    share = held(catalog, filter, label) / max(total, 1)
    first = total if share * total < need else int(need / share * MARGIN) + 1
    depth = max(1, min(first, total, MAX_DEPTH))
    while True:
        found = run(depth)
        keep = kept_ids(catalog, [r.id for r in found], filter, label)
        kept = [r for r in found if r.id in keep]
        if len(kept) >= need or depth >= min(total, MAX_DEPTH):
            break
        depth = min(depth * 4, total, MAX_DEPTH)
    return Page(kept[start : start + per_page], len(kept) > start + per_page)
