"""Pages of filtered search results (lookalike.search.paging) over a stand-in catalog."""

from __future__ import annotations

import pytest

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import ImageCounts
from lookalike.search import paging
from lookalike.search.searcher import SearchResult


class Catalog:
    """1,000 images; every 50th has the label "rare", every 10th another one; of the
    others, odd ids are tagged and the rest tagged unknown."""

    def count(self) -> int:
        return 1000

    def image_counts(self) -> ImageCounts:
        return ImageCounts(1000, 100, 900, 450, 0)

    def label_counts(self):
        return [("common", 80), ("rare", 20)]

    def labels_of(self, ids):
        return {i: ("rare" if i % 50 == 0 else "common") for i in ids if i % 10 == 0}

    def stored_label(self, label):
        return label

    def tag_rows_of(self, ids):
        return {i: {"label": "x" if i % 2 else None} for i in ids}


def searcher(depths: list[int]):
    def run(depth: int) -> list[SearchResult]:
        depths.append(depth)
        return [SearchResult(i, f"/p/{i}", 1 - i / 2000) for i in range(1, min(depth, 1000) + 1)]

    return run


def test_unfiltered_pages_are_one_search_each():
    depths: list[int] = []
    first = paging.search_page(searcher(depths), Catalog(), 1, 24)
    third = paging.search_page(searcher(depths), Catalog(), 3, 24)
    assert [r.id for r in first.results] == list(range(1, 25)) and first.more
    assert [r.id for r in third.results] == list(range(49, 73)) and third.more
    assert depths == [24, 72]
    last = paging.search_page(searcher([]), Catalog(), 42, 24)  # 985..1000
    assert len(last.results) == 16 and not last.more


def test_a_rare_filter_searches_deeper_until_the_page_is_full():
    depths: list[int] = []
    page = paging.search_page(searcher(depths), Catalog(), 2, 5, label="rare")
    assert [r.id for r in page.results] == [300, 350, 400, 450, 500] and page.more
    # 11 needed, 1 in 50 held: 11 x 50 x 1.5 deep at first; then 4x deeper.
    assert depths == [826]
    depths.clear()
    end = paging.search_page(searcher(depths), Catalog(), 4, 5, label="rare")
    assert [r.id for r in end.results] == [800, 850, 900, 950, 1000] and not end.more
    assert depths == [1000]  # more than the 20 it holds needed: the whole library
    depths.clear()
    paging.search_page(searcher(depths), Catalog(), 3, 10, label="rare")  # 31 needed
    assert depths == [1000]


def test_a_filter_whose_images_lie_far_searches_deeper_again():
    class Far(Catalog):  # holds 1 in 10, but none of the nearest 500
        def labels_of(self, ids):
            return {i: "far" for i in ids if i > 500 and i % 10 == 0}

        def label_counts(self):
            return [("far", 100)]

    depths: list[int] = []
    page = paging.search_page(searcher(depths), Far(), 1, 5, label="far")
    assert [r.id for r in page.results] == [510, 520, 530, 540, 550] and page.more
    assert depths == [91, 364, 1000]


@pytest.mark.parametrize(
    "filter, test",
    [
        ("labelled", lambda i: i % 10 == 0),
        ("unlabelled", lambda i: i % 10 != 0),
        ("tagged", lambda i: i % 10 != 0 and i % 2 == 1),
        ("unknown", lambda i: i % 10 != 0 and i % 2 == 0),
    ],
)
def test_filters_keep_what_the_library_page_shows(filter, test):
    page = paging.search_page(searcher([]), Catalog(), 1, 30, filter)
    assert len(page.results) == 30 and all(test(r.id) for r in page.results)
    scores = [r.score for r in page.results]
    assert scores == sorted(scores, reverse=True)  # still best first


def test_bad_filter_or_page():
    with pytest.raises(BadQuery, match="unknown filter"):
        paging.search_page(searcher([]), Catalog(), 1, 5, "errors")
    with pytest.raises(BadQuery, match="page"):
        paging.search_page(searcher([]), Catalog(), 0, 5)
