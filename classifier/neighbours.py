"""The k nearest neighbours of every row of a matrix: the graphs of tagging and clustering.

Exact (FAISS flat inner product) up to ``exact_max`` rows. Beyond, an exact all-pairs
pass costs n^2 d (13 TFLOP at 100k x 1,280: minutes on 2 cores), so an inverted file
of ~sqrt(n) lists is trained on ~40 points a list and searched with ``nprobe`` lists:
a graph needs only the near neighbours, which sit in the same or adjacent lists.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

EXACT_MAX = 20_000
NPROBE = 4
QUERY_CHUNK = 4096


def knn(
    x: npt.NDArray[np.float32],
    k: int,
    exact_max: int | None = None,
    seed: int = 0,
    nprobe: int = NPROBE,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """(similarities, row numbers) of each row's ``k`` nearest rows, itself included
    (usually first); -1 where fewer were found."""
    import faiss  # a native library: loaded when a graph is built, not on import

    exact_max = EXACT_MAX if exact_max is None else exact_max
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    index: faiss.Index
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        lists = int(np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        ivf.train(x[rng.choice(n, min(n, lists * 40), replace=False)])
        ivf.nprobe = nprobe
        index = ivf
    index.add(x)
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, QUERY_CHUNK):
        s, i = index.search(x[start : start + QUERY_CHUNK], k)
        sims[start : start + len(s)], ids[start : start + len(i)] = s, i
    return sims, ids
