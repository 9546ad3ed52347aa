"""Small numerical helpers shared by the models, tagging and clustering."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def l2_normalize(x: np.ndarray) -> npt.NDArray[np.float32]:
    """Rows divided by their L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> npt.NDArray[np.float32]:
    """Softmax over the last axis, stable for large logits, as float32."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
