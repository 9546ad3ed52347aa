"""Libraries of made-up vectors for the index tests (a fake model, no images)."""

from __future__ import annotations

import numpy as np

from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library


def fake_model(dim: int) -> ModelInfo:
    return ModelInfo(
        name="fake", dim=dim, preprocessing="none", weights_hash="0", descriptor="test"
    )


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_vectors(lib: Library, vectors: np.ndarray, start: int = 0) -> list[int]:
    """Catalog rows for ``vectors`` (paths /p/<start + i>.jpg); their ids."""
    items = [
        NewImage(f"/p/{start + i}.jpg", 1, 1, f"{start + i:032x}", 1, 1, v, None)
        for i, v in enumerate(vectors)
    ]
    with lib.catalog.transaction() as conn:
        return lib.catalog.write_images(conn, items)
