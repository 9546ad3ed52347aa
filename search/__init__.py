"""Lookalike from Python: open a library read-only and query it.

Example::

    from lookalike import search

    with search.open_library("~/photos/.lookalike") as lib:
        for hit in lib.search("query.jpg", k=5):              # path, bytes, PIL image
            print(hit.score, hit.path)                        # or an (H, W, 3) uint8 array
        lib.search("query.jpg", k=5, box=(10, 20, 200, 180))  # a region, in pixels
        lib.search_object("query.jpg", k=5)                   # its main object (.box)
        lib.search_text("a red car")                          # CLIP libraries only
        for group in lib.duplicates(threshold=0.9):           # largest groups first
            print(group.size, [m.path for m in group.members])

Every call returns typed values: :class:`SearchResult` (id, path, score, match:
"copy", "probable" or None, see its definition),
:class:`ObjectSearch` (results, box, found) and :class:`DuplicateGroup` (members:
:class:`DuplicateMember` id, path, score). Errors
are :class:`lookalike.indexer.errors.LookalikeError` subclasses (``BadQuery`` for a bad box or
threshold, ``UnreadableImage`` for a query that is not an image, ``LibraryNotFound``).
"""

from __future__ import annotations

from pathlib import Path

from lookalike.indexer.errors import BadQuery, LibraryNotFound, LookalikeError, UnreadableImage
from lookalike.indexer.models.protocol import Embedder
from lookalike.search.copy_groups import CopyGroup, CopyMember, CopyPass
from lookalike.search.duplicates import DEFAULT_THRESHOLD, DuplicateGroup, DuplicateMember
from lookalike.search.searcher import ObjectSearch, Searcher, SearchResult

__all__ = [
    "BadQuery",
    "CopyGroup",
    "CopyMember",
    "CopyPass",
    "DEFAULT_THRESHOLD",
    "DuplicateGroup",
    "DuplicateMember",
    "LibraryNotFound",
    "LookalikeError",
    "ObjectSearch",
    "SearchResult",
    "Searcher",
    "UnreadableImage",
    "open_library",
]


def open_library(
    path: str | Path | None = None, embedder: Embedder | None = None, **options
) -> Searcher:
    """Open the library at ``path`` read-only (None: $LOOKALIKE_LIBRARY or the default).

    Args:
        path: the library directory.
        embedder: the model to embed queries with; by default the one that built the
            library, loaded on the first image or text query (not for duplicates).
        options: search settings passed to :class:`Searcher` (e.g. ``rerank=False``).

    Returns:
        A :class:`Searcher`; close it (or use it in a ``with`` block) when done.

    Raises:
        LibraryNotFound: no library at ``path``.
        ModelMismatch: ``embedder`` is not the model that built the library.
    """
    return Searcher.open(path, embedder, **options)
