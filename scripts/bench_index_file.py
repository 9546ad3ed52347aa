"""What checking an index file costs when it loads: a flat index of N x D random unit
vectors (the largest flat library: 50k x 1280, 256 MB) read plainly and read checked
(size, CRC-32, count: indexer/store/index_file.py), in the same run.

    python scripts/bench_index_file.py [--n 50000] [--dim 1280] [--repeat 3]

Prints each read's seconds and the ratio checked / plain.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.indexer.store.index_file import read_checked, save_index
from lookalike.indexer.store.index_kinds import read_index
from lookalike.indexer.store.vector_index import VectorIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_faiss().omp_set_num_threads(1)
    x = np.random.default_rng(0).standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VectorIndex.empty(args.dim)
    index.add(np.arange(args.n), x)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index-1.faiss"
        facts = save_index(index, path, 1)
        for _ in range(args.repeat):
            start = time.perf_counter()
            read_index(path)
            plain = time.perf_counter() - start
            start = time.perf_counter()
            read_checked(path, facts, None, args.dim)
            checked = time.perf_counter() - start
            print(
                f"{facts.bytes / 1e6:.0f} MB: plain {plain:.2f} s, checked {checked:.2f} s, "
                f"ratio {checked / plain:.2f}"
            )


if __name__ == "__main__":
    main()
