"""Small numerical helpers shared by the models, tagging and clustering."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def l2_normalize(x: np.ndarray) -> npt.NDArray[np.float32]:
    """Rows divided by their L2 norm (zero rows stay zero), as float32.

    float64 rows (sums of many unit vectors, in clustering) are divided in float64 and
    only then cast, so their last digits count; anything else is cast to float32 first.
    """
    x = np.asarray(x)
    if x.dtype != np.float64:
        x = x.astype(np.float32, copy=False)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def softmax(logits: np.ndarray, dtype: npt.DTypeLike = np.float32) -> npt.NDArray[Any]:
    """Softmax over the last axis, stable for large logits, as ``dtype``.

    The tagging heads keep float64: their probabilities feed the calibration.
    """
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype)
