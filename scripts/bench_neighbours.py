"""The k-NN graph of tagging and clustering at library scale: IVF against exact.

Builds N vectors as scripts/bench_search.py does (mixtures of real dev embeddings plus
noise), then times lookalike.classifier.neighbours.knn with its IVF (what a library past
EXACT_MAX images gets) on all of them, against exact search of the same vectors for
--sample rows (an exact all-pairs pass costs n^2 d; its time is scaled from the
sample by N / sample), and prints the share of the exact neighbours the IVF finds.

    python scripts/bench_neighbours.py [--n 30000] [--k 10] [--sample 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import faiss
    from bench_search import load_real, mixtures

    from lookalike.classifier.neighbours import knn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--embeddings", default="/work/cache/dev_embeddings.npz")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    x = mixtures(load_real(args.embeddings), args.n, seed=5)
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
    if args.json:
        print(json.dumps(doc))


if __name__ == "__main__":
    main()
