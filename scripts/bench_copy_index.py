"""The copy stage's search at library scale: exact search over N copy descriptors.

A robust search in a library with copy detection embeds the query once more and
searches every copy descriptor exactly (indexer.store.copy_vectors.CopyIndex: float16 codes).
This measures that search alone, per query, on N random unit descriptors (512-d, the
SSCD models'), for the top 150 (the candidates one search asks for), against the
plain float32 flat index on the same vectors (the two take turns on each query), with
FAISS on one thread (a server runs searches side by side, one per request thread) and
the memory each holds.

    python scripts/bench_copy_index.py [--n 100000,1000000] [--queries 50] [--json]
"""

from __future__ import annotations

import faiss
import numpy as np

from bench_support.figures import emit, parser
from bench_support.timing import latencies
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.copy_vectors import new_faiss_index

DIM = 512
TOP = 150


def measure(n: int, queries: int, rng: np.random.Generator) -> dict:
    """One library size: both indexes over the same N random unit descriptors."""
    x = l2_normalize(rng.standard_normal((n, DIM), dtype=np.float32))
    q = x[:queries] + rng.normal(0, 0.02, (queries, DIM)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    ours = new_faiss_index(DIM)
    ours.add_with_ids(x, ids)
    reference = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    reference.add_with_ids(x, ids)
    del x
    ours_lat, ref_lat = latencies(
        [lambda v: ours.search(v, TOP), lambda v: reference.search(v, TOP)], q
    )
    ours_ms, ref_ms = float(np.median(ours_lat)), float(np.median(ref_lat))
    same = np.mean(
        [
            len(set(ours.search(v[None], 10)[1][0]) & set(reference.search(v[None], 10)[1][0])) / 10
            for v in q[:10]
        ]
    )
    return {
        "n": n,
        "p50_ms": round(ours_ms, 2),
        "float32_p50_ms": round(ref_ms, 2),
        "ratio": round(ref_ms / ours_ms, 2),
        "memory_mb": round(n * DIM * 2 / 2**20),
        "float32_memory_mb": round(n * DIM * 4 / 2**20),
        "top10_agreement": round(float(same), 3),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", default="100000,1000000", help="comma-separated library sizes")
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(v) for v in args.n.split(",")):
        row = measure(n, args.queries, rng)
        rows.append(row)
        print(
            f"{n:>9} descriptors: p50 {row['p50_ms']:.1f} ms per query (float32 flat "
            f"{row['float32_p50_ms']:.1f} ms, {row['ratio']:.2f}x), {row['memory_mb']} MB "
            f"(float32 {row['float32_memory_mb']} MB), top-10 agreement {row['top10_agreement']}"
        )
    emit(args, rows)


if __name__ == "__main__":
    main()
