"""The geometry of groups of unit vectors, each group kept as its sum vector.

The mean pairwise cosine similarity of n unit vectors with sum s is
``(s . s - n) / (n (n - 1))``, and of two groups ``s_a . s_b / (n_a n_b)``: so the
linkage (:mod:`lookalike.classifier.clustering.linkage`) and the steps of discovery
that judge groups (:mod:`lookalike.classifier.clustering.discovery`) never need
the members themselves.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def spread(s: npt.NDArray, n: float) -> float:
    """Mean pairwise cosine distance of n unit vectors whose sum is s (0 for one)."""
    return float(1.0 - (s @ s - n) / (n * (n - 1))) if n > 1 else 0.0


def spreads(sums: npt.NDArray, size: npt.NDArray) -> npt.NDArray:
    """:func:`spread` of each group (rows of ``sums``, ``size`` members each)."""
    sq = np.einsum("ij,ij->i", sums, sums)
    pairs = np.maximum(size * (size - 1), 1)
    return np.where(size > 1, 1.0 - (sq - size) / pairs, 0.0)


def pooled_spread(wa, wb, na, nb):
    """Spread of two groups pooled over their pairs (how spread-out they are inside)."""
    pa, pb = na * (na - 1) / 2, nb * (nb - 1) / 2
    return (wa * pa + wb * pb) / np.maximum(pa + pb, 1)
