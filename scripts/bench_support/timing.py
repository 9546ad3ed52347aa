"""Per-query latencies taken in turns, and a process's resident memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

WARM_UP = 20  # queries run before timing: caches, lazy initialisation


def latencies(
    fns: Sequence[Callable[[np.ndarray], object]], queries: np.ndarray, warm: int = WARM_UP
) -> list[np.ndarray]:
    """Milliseconds of each function per query (each gets one query as a 1-row batch).

    The functions take turns on each query, in rotating order, so a change in the
    machine's load affects them alike, and who goes first (and finds cold caches)
    rotates too.
    """
    for q in queries[:warm]:
        for fn in fns:
            fn(q[None])
    out: list[list[float]] = [[] for _ in fns]
    for j, q in enumerate(queries):
        for turn in range(len(fns)):
            f = (turn + j) % len(fns)
            start = time.perf_counter()
            fns[f](q[None])
            out[f].append(time.perf_counter() - start)
    return [np.array(times) * 1e3 for times in out]


def rss_mb() -> float:
    """This process's resident memory (Linux), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
