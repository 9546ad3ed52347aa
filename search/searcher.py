"""Query a library: by image (file, bytes, PIL image or pixel array), by vector, by id.

A Searcher opens the library read-only, loads the model the library was built with
(once, lazily) and keeps the index in memory, reloading it when an indexing run
has committed new content since.

Query by image runs in two stages. First, two views of the query (the model's own
crop and the whole image squashed to a square, so that a cropped copy still
overlaps) are embedded and searched, their results merged by best score. Then the
top candidates are re-ranked by geometric verification of local features
(``lookalike.search.rerank``), which puts copies of the query (edited, cropped, mirrored)
first. ``rerank=False`` and ``multiview=False`` give the plain first stage.

In a library with copy detection on (``lookalike.indexer.store.copy_vectors``), the re-ranked
candidates also come from the query's copy-detection descriptor: its nearest
descriptors and the model's nearest vectors, taken in turn. The copy descriptor
ranks a heavily edited copy's original far higher than the model's vector does, so
verification stops at the 60th candidate (``COPY_DEEP``) instead of the 150th.
When the nearest descriptor stands out from the next (``PROBABLE_GAP``), that image
is a probable copy and comes right after the verified ones. The other candidates
that do not verify keep the model's order (look-alikes), except that the two nearest
descriptors' images keep the last places of the first k results (``COPY_NEAREST``,
at most one place per 5 results): the copy stage changes which copies are found,
and takes two look-alike places of a page, not the meaning of the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from itertools import zip_longest
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from lookalike.indexer.errors import BadQuery, LookalikeError, ModelUnavailable
from lookalike.indexer.images import DEFAULT_MAX_PIXELS, load_image
from lookalike.indexer.images import parse_box as parse_box_text
from lookalike.indexer.models.copy_model import CopyModel, load_copy_model
from lookalike.indexer.models.protocol import Embedder, FeatureVector
from lookalike.indexer.models.registry import load_embedder_for
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.copy_vectors import CopyIndex
from lookalike.indexer.store.image_marks import hidden_ids
from lookalike.indexer.store.library import Library
from lookalike.indexer.store.live_index import LiveIndex, live_view
from lookalike.indexer.store.vector_index import VectorIndex
from lookalike.search.copy_groups import (
    CANDIDATES,
    DEFAULT_CANDIDATE_THRESHOLD,
    CopyPass,
    copy_pairs,
    find_copy_groups,
)
from lookalike.search.duplicates import DEFAULT_THRESHOLD, DuplicateGroup, find_duplicates
from lookalike.search.localize import localize
from lookalike.search.rerank import Reranker
from lookalike.search.text import check_text, require_text_model, text_vectors

log = logging.getLogger(__name__)

COPY, PROBABLE = "copy", "probable"  # SearchResult.match

Box = tuple[float, float, float, float]
QueryImage = str | Path | bytes | Image.Image | np.ndarray


class SearchResult(NamedTuple):
    id: int
    path: str
    score: float  # cosine similarity, 1.0 for the same image
    # With re-ranking: "copy" (verified by local features, or the same picture),
    # "probable" (the copy descriptors' clear nearest, see PROBABLE_GAP); None: a
    # look-alike, or a search that did not check.
    match: str | None = None


class ObjectSearch(NamedTuple):
    results: list[SearchResult]
    box: tuple[int, int, int, int]  # the region searched with, in the query's pixels
    found: bool  # False when no object stood out (the box is then the whole image)


class Searcher:
    """Read-only queries over one library (see module docstring)."""

    def __init__(
        self,
        library: Library,
        embedder: Embedder | None = None,
        *,
        rerank: bool = True,
        multiview: bool = True,
        copies: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.library = library
        self.max_pixels = max_pixels  # query images larger than this are refused
        self.rerank = rerank  # verify the top candidates geometrically (lookalike.search.rerank)
        self.multiview = multiview  # also search with the whole image squashed to a square
        self.copies = copies  # candidates from the copy descriptors too, where the library has them
        self._reranker: Reranker | None = None
        self._embedder = embedder
        self._index: VectorIndex | LiveIndex | None = None
        self._state: tuple | None = None
        self._base: tuple[int, VectorIndex, np.ndarray] | None = None  # generation, file, ids
        self._copies: tuple[CopyModel, CopyIndex] | None = None
        self._copies_state: tuple | None = None
        self._copies_failed: str | None = None  # the recorded model that could not load
        self._lock = threading.Lock()
        if embedder is not None:
            library.check_model(embedder.info)

    @classmethod
    def open(
        cls, root: str | Path | None = None, embedder: Embedder | None = None, **options
    ) -> Searcher:
        """Open a library read-only; ``options``: ``rerank``, ``multiview``, ``copies``,
        ``max_pixels`` (see __init__)."""
        return cls(Library.open(root, readonly=True), embedder, **options)

    def close(self) -> None:
        if self._reranker is not None:
            self._reranker.close()
        self.library.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                info = self.library.model_info()
                if info is None:
                    raise LookalikeError(f"library {self.library.root} has no model yet")
                embedder = load_embedder_for(info)
                self.library.check_model(embedder.info)
                self._embedder = embedder
        return self._embedder

    @property
    def index(self) -> VectorIndex | LiveIndex:
        """What searches use: brought up to date when the library changed since the last
        look (the index file again only when a new one was written: indexer.store.live_index)."""
        state = self.library.state()
        with self._lock:
            if self._index is None or state != self._state:
                self._index = self._current(generation=state[0])
                self._state = state
            return self._index

    def _current(self, generation: int) -> VectorIndex | LiveIndex:
        if self._base is None or self._base[0] != generation:
            base = self.library.load_index()
            self._base = (generation, base, np.sort(base.ids()))
        _gen, base, base_ids = self._base
        pending = self.library.catalog.pending_index()
        if not pending:
            return base
        view = live_view(base, base_ids, pending, self.library.catalog)
        return view if view is not None else self.library.live_index()

    def copy_search(self) -> tuple[CopyModel, CopyIndex] | None:
        """The copy model and its index, up to date; None when the library has copy
        detection off (or its copy model cannot be loaded here: logged once)."""
        state = self.library.state()
        with self._lock:
            if state == self._copies_state:
                return self._copies
            info = self.library.copy_model_info()
            if info is None:
                self._copies = None
            elif self._copies is None or self._copies[1].info != info:
                self._copies = None
                if info.to_json() != self._copies_failed:
                    try:
                        self._copies = (
                            load_copy_model(info),
                            CopyIndex(self.library.catalog, info),
                        )
                    except ModelUnavailable as e:
                        log.warning("searching without copy detection: %s", e)
                        self._copies_failed = info.to_json()
            if self._copies is not None:
                self._copies[1].refresh()
            self._copies_state = state
            return self._copies

    def embed_image(self, query: QueryImage, box: Box | None = None) -> FeatureVector:
        """The query's vector (after cropping to ``box`` in pixel coordinates)."""
        image = self._as_image(query, need_full=box is not None)
        if box is not None:
            image = image.crop(validate_box(box, image.size))
        pixels = self.embedder.preprocess(image)
        return self.embedder.embed(pixels[None], class_probs=False).vectors[0]

    @property
    def reranker(self) -> Reranker:
        with self._lock:
            if self._reranker is None:
                self._reranker = Reranker()
        return self._reranker

    def search(
        self,
        query: QueryImage,
        k: int = 10,
        box: Box | None = None,
        *,
        rerank: bool | None = None,
        multiview: bool | None = None,
    ) -> list[SearchResult]:
        """The k library images most similar to the query image (or its ``box``), best first.

        Copies of the query that geometric verification confirms come first (see the
        module docstring); ``rerank`` and ``multiview`` override the searcher's settings
        for this query.
        """
        with self._in_flight():
            image = self._as_image(query, need_full=box is not None)
            if box is not None:
                image = image.crop(validate_box(box, image.size))
            return self._search_images([image], k, rerank, multiview)[0]

    def search_object(
        self,
        query: QueryImage,
        k: int = 10,
        *,
        rerank: bool | None = None,
        multiview: bool | None = None,
    ) -> ObjectSearch:
        """Search with the main object of the query, localised by lookalike.search.localize.

        Raises:
            BadQuery: the library's model cannot localise (it has no classifier head).
        """
        with self._in_flight():
            image = self._as_image(query, need_full=True)
            found = localize(self.embedder, image)
            results = self._search_images([image.crop(found.box)], k, rerank, multiview)[0]
        return ObjectSearch(results, found.box, found.found)

    def _in_flight(self) -> AbstractContextManager[None]:
        """The model's mark for a query in progress (the default model gives a lone
        query every core: see EfficientNetLite0.in_flight)."""
        return self.embedder.in_flight()

    def search_text(self, text: str, k: int = 10) -> list[SearchResult]:
        """The k library images that best match ``text``, best first (score: cosine).

        Raises:
            BadQuery: empty text, or a library whose model has no text encoder (CLIP
                libraries only; see lookalike.search.text).
        """
        return self.search_texts([text], k)[0]

    def search_texts(self, texts: list[str], k: int = 10) -> list[list[SearchResult]]:
        """``search_text`` for several texts, embedding them in one batch."""
        if not texts:
            return []
        require_text_model(self.library)  # before the model loads
        texts = [check_text(t) for t in texts]
        return self.search_vectors(text_vectors(self.embedder, texts), k)

    def search_many(
        self, queries: list[QueryImage], k: int = 10, *, rerank: bool | None = None
    ) -> list[list[SearchResult]]:
        if not queries:
            return []
        return self._search_images([self._as_image(q) for q in queries], k, rerank)

    def _search_images(
        self,
        images: list[Image.Image],
        k: int,
        rerank: bool | None,
        multiview: bool | None = None,
    ) -> list[list[SearchResult]]:
        """Both stages for each image (see the module docstring)."""
        if k < 1:
            raise BadQuery(f"k must be at least 1, not {k}")
        rerank = self.rerank if rerank is None else rerank
        multiview = self.multiview if multiview is None else multiview
        options = self.reranker.options
        depth = max(k, options.depth, options.deep) if rerank else k
        views = [query_views(self.embedder, image, multiview) for image in images]
        pixels = np.concatenate(views)
        vectors = np.concatenate(
            [
                self.embedder.embed(pixels[i : i + 32], class_probs=False).vectors
                for i in range(0, len(pixels), 32)
            ]
        )
        found = self.search_vectors(vectors, depth)
        copies = self.copy_search() if rerank and self.copies else None
        out, at = [], 0
        for image, view in zip(images, views, strict=True):
            mine = slice(at, at + len(view))
            at += len(view)
            results = merge_results(found[mine])
            if rerank:
                pool: list[SearchResult] | CopyCandidates = results
                if copies is not None:
                    pool = self._with_copy_candidates(image, results, vectors[mine], copies, depth)
                results = self._reranked(image, pool, k)
            out.append(results[:k])
        return out

    def _reranked(
        self, image: Image.Image, candidates: list[SearchResult] | CopyCandidates, k: int
    ) -> list[SearchResult]:
        """Verified copies first (most matches first); with copy candidates, then the
        probable copy; then the rest by the model's score, among which the copy
        descriptors' nearest images keep places in the first ``k`` (keep_nearest)."""
        found: CopyCandidates | None = None
        pool: list[SearchResult]
        if isinstance(candidates, CopyCandidates):
            found, pool = candidates, candidates.candidates
        else:
            pool = candidates
        deep = None if found is None else COPY_DEEP
        ranked = self.reranker.rerank(image, pool, path=lambda r: r.path, deep=deep)
        enough = self.reranker.options.min_inliers
        verified = [r._replace(match=COPY) for r, n in ranked if (n or 0) >= enough]
        rest = sorted((r for r, n in ranked if (n or 0) < enough), key=lambda r: -r.score)
        if found is None:
            return same_picture_first(verified + rest)
        first = [r._replace(match=PROBABLE) for r in rest if r.id == found.probable]
        rest = first + [r for r in rest if r.id != found.probable]
        results = same_picture_first(verified + rest)
        return keep_nearest(results, found.nearest, k, fixed=len(verified) + len(first))

    def _with_copy_candidates(
        self,
        image: Image.Image,
        results: list[SearchResult],
        query_vectors: FeatureVector,
        copies: tuple[CopyModel, CopyIndex],
        depth: int,
    ) -> CopyCandidates:
        """The model's results and the copy descriptor's nearest, taken in turn (copy
        first), each image once; the copy candidates scored by the model's cosine.

        Also the probable copy: the copy descriptor's nearest image when it stands out
        from the next by ``PROBABLE_GAP`` or more (else None).
        """
        model, index = copies
        scores, ids = index.search(model.embed(image)[None], depth)
        probable = None
        if ids.shape[1] > 1 and ids[0, 1] >= 0 and scores[0, 0] - scores[0, 1] >= PROBABLE_GAP:
            probable = int(ids[0, 0])
        scored: dict[int, SearchResult] = {r.id: r for r in results}
        extra = [int(i) for i in ids[0] if i >= 0 and int(i) not in scored]
        if extra:
            present, vectors = self.library.catalog.vectors(extra)
            paths = self.visible_paths(present.tolist())
            cos = (vectors @ np.asarray(query_vectors, dtype=np.float32).T).max(axis=1)
            for i, c in zip(present.tolist(), cos.tolist(), strict=True):
                if i in paths:
                    scored[i] = SearchResult(i, paths[i], float(min(c, 1.0)))
        order: list[SearchResult] = []
        taken: set[int] = set()
        copy_ids = [int(i) for i in ids[0] if i >= 0 and int(i) in scored]
        for pair in zip_longest(copy_ids, [r.id for r in results]):
            for i in pair:
                if i is not None and i not in taken:
                    taken.add(i)
                    order.append(scored[i])
        return CopyCandidates(order, copy_ids[:COPY_NEAREST], probable)

    def search_vector(self, vector: FeatureVector, k: int = 10) -> list[SearchResult]:
        return self.search_vectors(np.atleast_2d(vector), k)[0]

    def search_vectors(self, vectors: FeatureVector, k: int = 10) -> list[list[SearchResult]]:
        if k < 1:
            raise BadQuery(f"k must be at least 1, not {k}")
        # Hidden images are left out of the answers: ask for as many more, so that a
        # page still holds k results (and the next page starts where this one ended).
        hidden = hidden_ids(self.library.catalog)
        scores, ids = self.index.search(vectors, k + len(hidden))
        paths = self.visible_paths(int(i) for i in ids.ravel() if i >= 0)
        out = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            out.append(
                [
                    SearchResult(int(i), paths[int(i)], float(min(s, 1.0)))
                    for s, i in zip(row_scores, row_ids, strict=True)
                    if i >= 0 and int(i) in paths
                ][:k]
            )
        return out

    def visible_paths(self, ids: Iterable[int]) -> dict[int, str]:
        """id -> path of the images among ``ids`` that are not hidden (image_marks)."""
        paths = self.library.catalog.paths(ids)
        for i in hidden_ids(self.library.catalog):
            paths.pop(i, None)
        return paths

    def duplicates(
        self,
        threshold: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[DuplicateGroup]:
        """Groups of near-duplicate images, largest first (see lookalike.search.duplicates)."""
        t = DEFAULT_THRESHOLD if threshold is None else threshold
        index = self.index
        if not isinstance(index, VectorIndex):  # a file plus an overlay: one index of both
            index = self.library.live_index()
        return find_duplicates(index, self.library.catalog, t, on_progress=on_progress)

    def copy_groups(
        self, threshold: float | None = None, neighbours: int = CANDIDATES, hashes: bool = True
    ) -> CopyPass:
        """Verified duplicate groups, largest first (see lookalike.search.copy_groups);
        ``hashes``: perceptual hashes propose candidates too.

        Opens the catalog for writing (only to keep the pair verdicts for next time).
        """
        t = DEFAULT_CANDIDATE_THRESHOLD if threshold is None else threshold
        index = self.index
        if not isinstance(index, VectorIndex):
            index = self.library.live_index()
        copies = self.copy_search()
        catalog = Catalog(self.library.catalog.path)
        try:
            extra = copy_pairs(catalog, copies[1]) if copies is not None else ()
            return find_copy_groups(index, catalog, t, neighbours, extra, hashes=hashes)
        finally:
            catalog.close()

    def similar(self, image_id: int, k: int = 10) -> list[SearchResult]:
        """Look-alikes of an indexed image (itself excluded)."""
        vector = self.library.catalog.vector(image_id)
        if vector is None:
            raise BadQuery(f"no image with id {image_id}")
        return [r for r in self.search_vector(vector, k + 1) if r.id != image_id][:k]

    def _as_image(self, query: QueryImage, need_full: bool = False) -> Image.Image:
        if isinstance(query, Image.Image):
            return query.convert("RGB")
        if isinstance(query, np.ndarray):
            if query.ndim != 3 or query.shape[2] != 3:
                raise BadQuery(f"an image array must be (height, width, 3), not {query.shape}")
            return Image.fromarray(np.asarray(query, dtype=np.uint8), "RGB")
        min_side = None if need_full else self.embedder.min_side
        return load_image(query, min_side=min_side, max_pixels=self.max_pixels).image


def query_views(embedder: Embedder, image: Image.Image, multiview: bool = True) -> np.ndarray:
    """The model inputs searched for one query: its own crop and the squashed whole image."""
    first = embedder.preprocess(image)
    if not multiview:
        return first[None]
    side = max(embedder.min_side, 32)
    return np.stack(
        [first, embedder.preprocess(image.resize((side, side), Image.Resampling.BILINEAR))]
    )


# A copy descriptor's nearest image this much closer (cosine) than its second is a probable
# copy, ranked right after the verified ones. Queries with no copy in the library rarely
# reach it (scripts/bench_copies.py: 1-2 of 50; their gap was 0.078 or less otherwise);
# copies that no candidate verified often do (on the dev data: 0.14-0.5), and no copy
# whose nearest descriptor was another image did (0 of 2,000, strong and harsh edits).
PROBABLE_GAP = 0.12

# The copy descriptors' nearest images that verification did not place keep places in
# the first k results (the last ones, after the look-alikes), at most one per 5 results.
# A heavily edited copy whose original does not verify then still shows its original
# among the results more often (two-edit copies of the dev data, recall@10: strong
# 0.987 -> 0.990 and 0.983 -> 0.993 on two seeds, harsh 0.923 -> 0.937; measured with
# verification 150 deep), at the cost of two look-alike places.
COPY_NEAREST = 2

# With copy candidates, verification goes this deep (not RerankOptions.deep, 150), as
# the originals of copies come early among them: on the dev data, 0-2 in 1,000 strong
# copies and 4 in 1,000 harsh ones verified only past the 60th candidate, while a query
# with no copy verifies every candidate (p50 124-138 ms at 60 deep, 216-268 ms at 150).
COPY_DEEP = 60


class CopyCandidates(NamedTuple):
    candidates: list[SearchResult]  # the model's and the copy descriptors', in turn
    nearest: list[int]  # the copy descriptors' nearest images, nearest first
    probable: int | None  # nearest[0] when it stands out from the next (PROBABLE_GAP)


def keep_nearest(
    results: list[SearchResult], nearest: list[int], k: int, fixed: int
) -> list[SearchResult]:
    """``results`` with the ``nearest`` ids not in the first k moved to the last places
    of the first k: at most k // 5 of them, and never before the first ``fixed``."""
    room = min(len(nearest), k // 5, max(0, k - fixed))
    on_page = {r.id for r in results[:k]}
    move = [i for i in nearest if i not in on_page][:room]
    if not move:
        return results
    by_id = {r.id: r for r in results}
    moved = [by_id[i] for i in move if i in by_id]
    moving = set(move)
    keep = [r for r in results if r.id not in moving]
    cut = k - len(moved)
    return keep[:cut] + moved + keep[cut:]


SAME_PICTURE = 0.9999  # cosine of the query's vector at or above which it is that picture


def same_picture_first(results: list[SearchResult]) -> list[SearchResult]:
    """Library images whose vector is the query's (the same file, or the same pixels in
    another format) first, best score first; then the rest in their order. Verification
    ranks copies by matched keypoints, which among exact copies is noise."""
    same = sorted(
        (r._replace(match=COPY) for r in results if r.score >= SAME_PICTURE),
        key=lambda r: -r.score,
    )
    return same + [r for r in results if r.score < SAME_PICTURE]


def merge_results(lists: list[list[SearchResult]]) -> list[SearchResult]:
    """One ranking from several: each image once, with its best score, best first."""
    best: dict[int, SearchResult] = {}
    for results in lists:
        for r in results:
            if r.id not in best or r.score > best[r.id].score:
                best[r.id] = r
    return sorted(best.values(), key=lambda r: -r.score)


def parse_box(value: str) -> Box:
    """'x0,y0,x1,y1' (pixels of the EXIF-rotated query image) as four floats."""
    return parse_box_text(value, BadQuery, what="the box")


def validate_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A region (x0, y0, x1, y1) in pixels, checked against the image size."""
    if len(box) != 4:
        raise BadQuery("a box is four numbers: X0,Y0,X1,Y1")
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = size
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise BadQuery("box coordinates must be finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise BadQuery(f"box {x0:g},{y0:g},{x1:g},{y1:g} has zero or negative area")
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise BadQuery(f"box {x0:g},{y0:g},{x1:g},{y1:g} is outside the {w}x{h} image")
    pixels = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
    if pixels[2] <= pixels[0] or pixels[3] <= pixels[1]:  # e.g. 0,0,0.4,0.4: no whole pixel
        raise BadQuery(
            f"box {x0:g},{y0:g},{x1:g},{y1:g} covers no whole pixel; "
            "give a region at least one pixel wide and high"
        )
    return pixels
