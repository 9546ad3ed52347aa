"""A small fake model and the random images it embeds: indexing rules without the real
model (fast, isolated)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from PIL import Image

from lookalike.indexer.models.protocol import EmbedOutput, ModelInfo
from lookalike.indexer.numerics import l2_normalize


class FakeEmbedder:
    """Vectors from coarse colour statistics: deterministic and content-dependent."""

    min_side = 32

    def __init__(self, name: str = "fake") -> None:
        self.info = ModelInfo(name=name, dim=48, preprocessing="fake-16", weights_hash="0")
        self.calls = 0

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((4, 4)), dtype=np.uint8)

    def embed(self, batch: np.ndarray, class_probs: bool = True) -> EmbedOutput:
        self.calls += len(batch)
        flat = batch.reshape(len(batch), -1).astype(np.float32) - 127.5
        return EmbedOutput(l2_normalize(flat), None)

    def class_names(self):
        return None

    def in_flight(self):
        return nullcontext()


def random_image(path, seed: int) -> None:
    """A 50 x 40 image of random pixels at ``path`` (folders made), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
