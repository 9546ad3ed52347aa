"""Query a library: by image (file, bytes, PIL image or pixel array), by vector, by id.

A Searcher opens the library read-only, loads the model the library was built with
(once, lazily) and keeps the index in memory, reloading it when an indexing run
has committed new content since.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from indexer.embedder import Embedder, FeatureVector, load_embedder
from indexer.errors import BadQuery, LookalikeError
from indexer.images import load_image
from indexer.library import Library
from indexer.vector_index import VectorIndex

Box = tuple[float, float, float, float]
QueryImage = str | Path | bytes | Image.Image | np.ndarray


class SearchResult(NamedTuple):
    id: int
    path: str
    score: float  # cosine similarity, 1.0 for the same image


class Searcher:
    """Read-only queries over one library (see module docstring)."""

    def __init__(self, library: Library, embedder: Embedder | None = None) -> None:
        self.library = library
        self._embedder = embedder
        self._index: VectorIndex | None = None
        self._state: tuple | None = None
        self._lock = threading.Lock()
        if embedder is not None:
            library.check_model(embedder.info)

    @classmethod
    def open(cls, root: str | Path | None = None, embedder: Embedder | None = None) -> Searcher:
        return cls(Library.open(root, readonly=True), embedder)

    def close(self) -> None:
        self.library.close()

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                info = self.library.model_info()
                if info is None:
                    raise LookalikeError(f"library {self.library.root} has no model yet")
                embedder = load_embedder(info.name)
                self.library.check_model(embedder.info)
                self._embedder = embedder
        return self._embedder

    @property
    def index(self) -> VectorIndex:
        """The in-memory index, reloaded when the library changed since the last look."""
        state = self.library.state()
        with self._lock:
            if self._index is None or state != self._state:
                self._index = self.library.live_index()
                self._state = state
            return self._index

    def embed_image(self, query: QueryImage, box: Box | None = None) -> FeatureVector:
        """The query's vector (after cropping to ``box`` in pixel coordinates)."""
        image = self._as_image(query, need_full=box is not None)
        if box is not None:
            image = image.crop(validate_box(box, image.size))
        pixels = self.embedder.preprocess(image)
        return self.embedder.embed(pixels[None]).vectors[0]

    def search(self, query: QueryImage, k: int = 10, box: Box | None = None) -> list[SearchResult]:
        """The k library images most similar to the query image, best first."""
        return self.search_vector(self.embed_image(query, box), k)

    def search_many(self, queries: list[QueryImage], k: int = 10) -> list[list[SearchResult]]:
        if not queries:
            return []
        pixels = np.stack([self.embedder.preprocess(self._as_image(q)) for q in queries])
        vectors = self.embedder.embed(pixels).vectors
        return self.search_vectors(vectors, k)

    def search_vector(self, vector: FeatureVector, k: int = 10) -> list[SearchResult]:
        return self.search_vectors(np.atleast_2d(vector), k)[0]

    def search_vectors(self, vectors: FeatureVector, k: int = 10) -> list[list[SearchResult]]:
        if k < 1:
            raise BadQuery(f"k must be at least 1, not {k}")
        scores, ids = self.index.search(vectors, k)
        paths = self.library.catalog.paths(int(i) for i in ids.ravel() if i >= 0)
        out = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            out.append(
                [
                    SearchResult(int(i), paths[int(i)], float(min(s, 1.0)))
                    for s, i in zip(row_scores, row_ids, strict=True)
                    if i >= 0 and int(i) in paths
                ]
            )
        return out

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
        return load_image(query, min_side=min_side).image


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
    return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
