"""Search at library scale: latency, throughput, recall@10 and memory of the index kind
the library would choose for N vectors, against exact search measured in the same run.

The N vectors are derived from real embeddings (of --library, by default the dev data,
indexed once into the bench cache): each is a random mixture of two or three of them
plus noise (bench_support.synthetic, which says why), and queries are fresh mixtures
drawn the same way (a photo not in the library).

As in a library, the exact vectors live in a SQLite catalog and, as float16 rows, in
the library's vectors.f16 file (both written to a temporary directory under --workdir:
5.3 + 2.4 GB at 1M, deleted at the end); the IVF kind re-scores its candidates from the
file, as a library does (the same search re-scoring from the catalog, as before that
file existed, is measured too). Latency figures assume the pages are in the OS page
cache, as they are right after they were written (a cold cache adds disk reads).
Vectors are generated in chunks and never held all at once: exact top-10 answers for
the queries are kept up to date chunk by chunk, and exact search latency is measured on
a flat index over the first --exact-max vectors, scaled linearly to N when smaller
(exact search is memory-bandwidth bound: its time grows with the vectors scanned).

    python scripts/bench_search.py --n 1000000 [--json] [--duplicates] [--library DIR]

With --json the last line is {"n", "index", "p50_ms", "p99_ms", "recall@10",
"memory_mb", "exact_p50_ms", ...}. memory_mb is the growth of the process's resident
memory when the saved index is loaded, as a searcher loads it (the growth while it was
built, which includes spare list capacity, and the index's own estimate are printed too).
FAISS runs on --threads threads (default 1: on a shared, loaded machine OpenMP threads
spin against each other and make timings meaningless).
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench_support.data import library_vectors
from bench_support.figures import emit, parser
from bench_support.synthetic import mixtures
from bench_support.timing import latencies, rss_mb
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.exact_vectors import FILE_NAME, ExactVectors, Writer
from lookalike.indexer.store.index_kinds import read_index, train_index
from lookalike.indexer.store.vector_index import IVF, IvfParams, VectorIndex, choose_kind
from lookalike.search.duplicates import DEFAULT_THRESHOLD, duplicate_groups

K = 10


class CatalogWriter:
    """A real catalog holding the generated vectors, as a library would (bulk inserts)."""

    def __init__(self, workdir: str, dim: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-search-", dir=workdir)
        self.catalog = Catalog(Path(self.dir) / "catalog.sqlite")
        self.catalog.conn.execute("PRAGMA foreign_keys=OFF")  # bulk load, ids are known
        self.exact_path = Path(self.dir) / FILE_NAME
        self.exact = Writer(self.exact_path, dim)
        self.dim = dim

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        rows = [(int(i), f"/bench/{i}.jpg", 1, 1, f"{i:032x}", 1, 1, 0.0, 0.0) for i in ids]
        with self.catalog.transaction() as conn:
            conn.executemany(
                "INSERT INTO images (id, path, size, mtime_ns, hash, width, height, added, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO vectors (image_id, vector) VALUES (?, ?)",
                [(int(i), v.tobytes()) for i, v in zip(ids, vectors, strict=True)],
            )
        self.exact.add(ids, vectors)

    def source(self) -> ExactVectors:
        """The library's re-scoring source: the float16 file (complete once this is
        called), the catalog behind it."""
        self.exact.commit()
        return ExactVectors(self.exact_path, self.dim, fallback=self.catalog)

    def close(self) -> None:
        self.catalog.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LOAD_PROBE = """
import sys
from lookalike.indexer.store.index_kinds import read_index
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
before = rss()
index = read_index(sys.argv[1])
print(rss() - before)
"""


def loaded_rss_mb(path: Path) -> float:
    """Resident memory a fresh process gains by loading the index file (as a searcher)."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


class TopK:
    """Exact top-k of a fixed query set over vectors that arrive in chunks."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.q = queries
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), -1, dtype=np.int64)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        k = self.ids.shape[1]
        s = self.q @ vectors.T
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        all_s = np.concatenate([self.scores, np.take_along_axis(s, part, 1)], 1)
        all_i = np.concatenate([self.ids, ids[part]], 1)
        top = np.argsort(-all_s, axis=1)[:, :k]
        self.scores = np.take_along_axis(all_s, top, 1)
        self.ids = np.take_along_axis(all_i, top, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, required=True, help="library size (vectors)")
    ap.add_argument("--queries", type=int, default=1000, help="queries for recall")
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--exact-max", type=int, default=250_000, help="vectors in the exact index")
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument(
        "--library", type=Path, help="real embeddings from this library (default: the dev data)"
    )
    ap.add_argument("--duplicates", action="store_true", help="also time a duplicates pass")
    ap.add_argument("--threads", type=int, default=1, help="FAISS (OpenMP) threads")
    ap.add_argument("--workdir", default=tempfile.gettempdir(), help="where the catalog goes")
    args = ap.parse_args()

    faiss.omp_set_num_threads(args.threads)
    _paths, real = library_vectors(args.library)
    dim = real.shape[1]
    queries = mixtures(real, args.queries, seed=10**9)
    truth = TopK(queries, K)
    kind = choose_kind(args.n)
    base_rss = rss_mb()
    t0 = time.perf_counter()
    if kind == IVF:
        sample = mixtures(real, IvfParams.for_size(args.n, dim).train_size(args.n), seed=-1 % 2**32)
        index = train_index(sample, args.n)
        del sample
    else:
        index = VectorIndex.empty(dim)
    train_s = time.perf_counter() - t0
    exact_n = min(args.n, args.exact_max)
    exact = faiss.IndexFlatIP(dim)
    exact_rss = 0.0
    catalog = CatalogWriter(args.workdir, dim) if kind == IVF else None
    t0 = time.perf_counter()
    for start in range(0, args.n, args.chunk):
        x = mixtures(real, min(args.chunk, args.n - start), seed=start // args.chunk + 1)
        ids = np.arange(start, start + len(x), dtype=np.int64) + 1  # catalog ids start at 1
        index.add(ids, x)
        truth.update(ids, x)
        if catalog is not None:
            catalog.add(ids, x)
        if start < exact_n:
            before = rss_mb()
            exact.add(x[: exact_n - start])
            exact_rss += rss_mb() - before
        del x
    fill_s = time.perf_counter() - t0
    os.sync()  # measure a settled machine, not one writing gigabytes back to disk
    build_mb = rss_mb() - base_rss - exact_rss
    # A searcher loads the index from its file: measure that (lists built by appending
    # hold spare capacity that a loaded index does not). The catalog re-scores, as in a
    # library.
    path = Path(args.workdir) / f".bench-index-{os.getpid()}.faiss"
    index.save(path)
    file_mb = path.stat().st_size / 2**20
    memory_mb = loaded_rss_mb(path)
    del index
    gc.collect()
    index = read_index(path, source=catalog.source() if catalog else None)
    path.unlink()

    # The share of the exact re-scoring, measured query by query in turn with the
    # library's search: the same search with SQ8 scores only, and with the exact vectors
    # read from the catalog instead of the float16 file.
    lat_queries = queries[: args.latency_queries]
    if catalog is not None:
        rescored, from_catalog = index.source, catalog.catalog

        def catalog_search(q):
            index.attach(from_catalog)
            try:
                return index.search(q, K)
            finally:
                index.attach(rescored)

        lat, sq8_lat, catalog_lat = latencies(
            [lambda q: index.search(q, K), lambda q: index.search(q, K, rerank=0), catalog_search],
            lat_queries,
        )
    else:
        (lat,) = latencies([lambda q: index.search(q, K)], lat_queries)
        sq8_lat = catalog_lat = lat
    exact_queries = queries[: min(100, args.latency_queries)]
    (exact_lat,) = latencies([lambda q: exact.search(q, K)], exact_queries)
    exact_p50 = float(np.median(exact_lat)) * args.n / exact_n
    exact.reset()
    t0 = time.perf_counter()
    _s, found = index.search(queries, K)
    batch_qps = len(queries) / (time.perf_counter() - t0)
    rec = recall(found, truth.ids)
    p50, p99 = float(np.median(lat)), float(np.percentile(lat, 99))

    print(
        f"n={args.n:,} index={index.describe()}  (trained in {train_s:.0f} s, "
        f"filled in {fill_s:.0f} s)"
    )
    print(
        f"single query: p50 {p50:.3f} ms, p99 {p99:.3f} ms; exact p50 {exact_p50:.1f} ms"
        + (
            f" (measured on {exact_n:,}, scaled x{args.n / exact_n:.1f})"
            if exact_n < args.n
            else ""
        )
        + f" -> {exact_p50 / p50:.0f}x faster"
    )
    print(f"batched: {batch_qps:,.0f} queries/s; recall@10 vs exact: {rec:.4f}")
    if kind == IVF:
        print(
            f"without the exact re-scoring: p50 {np.median(sq8_lat):.3f} ms; re-scoring "
            f"from the catalog instead of vectors.f16: p50 {np.median(catalog_lat):.3f} ms "
            f"({np.median(catalog_lat) / p50:.2f}x the library's)"
        )
    print(
        f"memory: {memory_mb:,.0f} MB resident for the loaded index (file {file_mb:,.0f} MB, "
        f"estimate {index.memory_bytes() / 2**20:,.0f} MB, {build_mb:,.0f} MB while built; "
        f"exact float32 would be {args.n * dim * 4 / 2**20:,.0f} MB)"
    )
    doc = {
        "n": args.n,
        "index": index.describe(),
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "recall@10": round(rec, 4),
        "memory_mb": round(memory_mb, 1),
        "build_memory_mb": round(build_mb, 1),
        "exact_p50_ms": round(exact_p50, 3),
        "exact_measured_on": exact_n,
        "no_rescore_p50_ms": round(float(np.median(sq8_lat)), 4),
        "catalog_rescore_p50_ms": round(float(np.median(catalog_lat)), 4),
        "batch_qps": round(batch_qps, 1),
        "train_s": round(train_s, 1),
        "fill_s": round(fill_s, 1),
    }
    if args.duplicates:
        t0 = time.perf_counter()
        before = rss_mb()
        groups = duplicate_groups(index, DEFAULT_THRESHOLD)
        dup_s = time.perf_counter() - t0
        print(
            f"duplicates pass over {args.n:,} vectors: {dup_s:.0f} s "
            f"({args.n / dup_s:,.0f} images/s), {len(groups)} groups, "
            f"+{rss_mb() - before:,.0f} MB"
        )
        doc |= {"duplicates_s": round(dup_s, 1), "duplicate_groups": len(groups)}
    if catalog is not None:
        catalog.close()
    emit(args, doc)


if __name__ == "__main__":
    main()
