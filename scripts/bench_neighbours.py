"""The k-NN graph of tagging and clustering at library scale: IVF against exact.

Builds N vectors as scripts/bench_search.py does (mixtures of real embeddings plus
noise: bench_support.synthetic; the real ones from --library, by default the dev data
indexed once into the bench cache), then times lookalike.classifier.neighbours.knn with
its IVF (what a library past EXACT_MAX images gets) on all of them, against exact
search of the same vectors for --sample rows (an exact all-pairs pass costs n^2 d; its
time is scaled from the sample by N / sample), and prints the share of the exact
neighbours the IVF finds.

    python scripts/bench_neighbours.py [--n 30000] [--k 10] [--sample 2000] [--json]
"""

from __future__ import annotations

import time
from pathlib import Path

import faiss
import numpy as np

from bench_support.data import library_vectors
from bench_support.figures import emit, parser
from bench_support.synthetic import mixtures
from lookalike.classifier.neighbours import knn


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument(
        "--library", type=Path, help="real embeddings from this library (default: the dev data)"
    )
    args = ap.parse_args()
    _paths, real = library_vectors(args.library)
    x = mixtures(real, args.n, seed=5)
    t = time.perf_counter()
    _s, approx = knn(x, args.k + 1, exact_max=0)
    ivf_s = time.perf_counter() - t
    rows = np.random.default_rng(0).choice(args.n, min(args.sample, args.n), replace=False)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    t = time.perf_counter()
    _s, exact = flat.search(x[rows], args.k + 1)
    exact_s = (time.perf_counter() - t) * args.n / len(rows)
    pairs = zip(approx[rows], exact, strict=True)
    recall = float(np.mean([len(set(a) & set(e)) / len(e) for a, e in pairs]))
    doc = {
        "n": args.n,
        "ivf_s": round(ivf_s, 2),
        "exact_s": round(exact_s, 2),
        "speedup": round(exact_s / ivf_s, 2),
        "recall": round(recall, 4),
    }
    print(
        f"n={args.n:,} k={args.k}: IVF {ivf_s:.1f} s, exact {exact_s:.1f} s (from "
        f"{len(rows):,} rows) -> {exact_s / ivf_s:.1f}x faster; neighbour recall {recall:.3f}"
    )
    emit(args, doc)


if __name__ == "__main__":
    main()
