"""Unit vectors, synthetic classes of them, and libraries of made-up vectors (a fake
model, no images) for the index, tagging and clustering tests."""

from __future__ import annotations

import numpy as np

from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library


def unit(a: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (in the input's precision), as float32."""
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, dim)))


def clusters(n_classes: int, per_class: int, dim: int = 32, spread: float = 0.35, seed: int = 0):
    """Non-negative vectors around random centres (like CNN features), with class ids."""
    rng = np.random.default_rng(seed)
    centres = rng.random((n_classes, dim)) ** 4
    x = np.repeat(centres, per_class, axis=0) + spread * rng.random((n_classes * per_class, dim))
    y = np.repeat(np.arange(n_classes), per_class)
    return unit(x), y


def fake_model(dim: int) -> ModelInfo:
    return ModelInfo(
        name="fake", dim=dim, preprocessing="none", weights_hash="0", descriptor="test"
    )


def write_vectors(lib: Library, vectors: np.ndarray, start: int = 0) -> list[int]:
    """Catalog rows for ``vectors`` (paths /p/<start + i>.jpg); their ids."""
    items = [
        NewImage(f"/p/{start + i}.jpg", 1, 1, f"{start + i:032x}", 1, 1, v, None)
        for i, v in enumerate(vectors)
    ]
    with lib.catalog.transaction() as conn:
        return lib.catalog.write_images(conn, items)
