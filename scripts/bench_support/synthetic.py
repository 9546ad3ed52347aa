"""Library-scale vectors made from real embeddings (a few thousand dev images).

Each is a random mixture of two or three real embeddings (Dirichlet weights) plus
Gaussian noise of half the per-dimension spread, renormalised. That makes a library as
diverse as a real one -- at 100k vectors the median nearest-neighbour similarity is
~0.79 (0.68 among the 2,113 dev images) -- instead of noisy copies whose near-ties make
recall meaningless. Fresh mixtures drawn the same way make queries (a photo not in the
library).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.indexer.numerics import l2_normalize

NOISE = 0.5  # Gaussian noise, in units of the real embeddings' per-dimension std
# Where synthetic images of a real library "are": nowhere, so nothing can read them
# (the re-ranker cannot verify them: they compete in the first stage only).
NOWHERE = "/nonexistent/lookalike-bench/"


def mixtures(real: np.ndarray, n: int, seed: int) -> npt.NDArray[np.float32]:
    """n L2-normalised mixtures of 2 or 3 rows of ``real`` plus noise."""
    real = np.asarray(real, dtype=np.float32)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(real), size=(n, 3))
    w = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    w[rng.random(n) < 0.5, 2] = 0.0  # half of them mix only two
    x = real[idx[:, 0]] * w[:, :1]
    x += real[idx[:, 1]] * w[:, 1:2]
    x += real[idx[:, 2]] * w[:, 2:3]
    x = l2_normalize(x)
    x += rng.standard_normal(x.shape, dtype=np.float32) * (real.std(0) * NOISE)
    return l2_normalize(x)
