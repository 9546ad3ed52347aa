"""Benchmark: `lookalike index --engine ray` on a local Ray instance vs the single-process path.

Both index the same N dev images (symbolic links in class folders, so the listing
stage runs as Ray tasks too) into fresh libraries, as real CLI subprocesses:

1. single-process (the reference, measured in the same run);
2. --engine ray on a local instance of --cpus CPUs;
3. --engine ray again with nothing to embed: the fixed cost of a Ray run.

It prints throughput, the ratio against the reference, the overhead per image,
the per-stage costs the workers measured, the throughput they imply for N nodes,
and the index memory per vector (measured on vectors made from the real embeddings of
the dev data, indexed once into the bench cache) projected to 10M and 100M images.

    python scripts/bench_ray.py --images 300 --cpus 2
    python scripts/bench_ray.py --device cuda    # both paths on a GPU (where there is one)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import faiss
import numpy as np

from bench_support.cli import cli
from bench_support.data import dev_files, library_vectors
from bench_support.figures import parser
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.index_kinds import train_index
from lookalike.indexer.store.library import BUILD_CHUNK
from lookalike.indexer.store.vector_index import FLAT, IVF, TRAIN_MAX, IvfParams, VectorIndex


def make_folder(root: Path, n: int) -> Path:
    """N dev images, round-robin over the classes, as links in class folders."""
    folder = root / "photos"
    for p in dev_files()[:n]:
        (folder / p.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / p.parent.name / p.name).symlink_to(p)
    return folder


def index(*args: str) -> tuple[dict, float]:
    """`lookalike index ARGS --json`: its summary, and the whole process's seconds."""
    ran = cli("index", *args, "--json", "-q", timeout=1800)
    return ran.last_json(), ran.seconds


def throughput(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        folder = make_folder(Path(tmp), args.images)
        n = args.images
        device = ["--device", args.device] if args.device else []
        single, single_wall = index(str(folder), "--library", f"{tmp}/single", *device)
        ray_args = ["--engine", "ray", "--ray-cpus", str(args.cpus), *device]
        ray_args += ["--shard-size", str(args.shard_size)]
        ray, ray_wall = index(str(folder), "--library", f"{tmp}/ray", *ray_args)
        noop, _ = index(str(folder), "--library", f"{tmp}/ray", *ray_args)
    assert single["embedded"] == ray["embedded"] == n and noop["embedded"] == 0, (single, ray)
    stages = ray["stage_seconds"]
    pipeline = stages["pipeline"]
    s_rate, r_rate, p_rate = n / single["seconds"], n / ray["seconds"], n / pipeline
    ray_ms, single_ms = 1000 * pipeline / n, 1000 * single["seconds"] / n
    fixed = ray["seconds"] - pipeline
    even = f"{fixed / (single_ms - ray_ms) * 1000:.0f} images" if single_ms > ray_ms else "never"
    lines = [
        f"{n} images, local Ray of {args.cpus} CPUs, shards of {args.shard_size}",
        f"  single-process       {s_rate:6.1f} img/s ({single['seconds']:.1f} s; "
        f"wall {single_wall:.1f} s; on {'+'.join(single['devices'])})  <- reference",
        f"  --engine ray, total  {r_rate:6.1f} img/s ({ray['seconds']:.1f} s; "
        f"wall {ray_wall:.1f} s; on {'+'.join(ray['devices'])})  ratio {r_rate / s_rate:.2f}",
        f"  --engine ray, decode+embed+merge stage only  {p_rate:6.1f} img/s "
        f"({pipeline:.1f} s)  ratio {p_rate / s_rate:.2f}",
        f"  fixed cost of a Ray run: {fixed:.1f} s here (start, listing, "
        f"planning, index); {noop['seconds']:.1f} s for a rerun with nothing to embed",
        f"  per image: {ray_ms:.1f} ms in the Ray stage vs {single_ms:.1f} ms single-process: "
        f"overhead {ray_ms - single_ms:+.1f} ms an image; Ray breaks even at {even}",
        "  per-stage cost, ms an image (the workers' timers, 1-thread model actors;",
        "  wall time includes waiting for a core on a shared machine, CPU time does not):",
    ]
    print("\n".join(lines))
    keys = ("worker_decode", "worker_embed", "worker_write", "merge")
    keys += ("worker_decode_cpu", "worker_embed_cpu", "merge_cpu")
    per = {k: 1000 * stages.get(k, 0.0) / n for k in keys}
    for k in ("decode", "embed"):
        wall, cpu = per[f"worker_{k}"], per[f"worker_{k}_cpu"]
        print(f"    {k:8s} {wall:7.2f} wall  {cpu:7.2f} CPU")
    print(f"    write    {per['worker_write']:7.2f} wall (shard files)")
    merge, merge_cpu = per["merge"], per["merge_cpu"]
    print(f"    merge    {merge:7.2f} wall  {merge_cpu:7.2f} CPU (driver: shard read, SQLite)")
    print(f"    stages (s): {json.dumps(stages)}")
    scaling(per, noop["seconds"])


def scaling(per: dict, fixed: float) -> None:
    """Throughput N nodes of 16 CPUs would reach, from the measured per-stage CPU costs."""
    cpu_ms = per["worker_decode_cpu"] + per["worker_embed_cpu"] + per["worker_write"]
    merge_ms = max(per["merge_cpu"], 1e-3)
    print(
        f"  scaling (16-CPU nodes; CPU work {cpu_ms:.1f} ms an image, "
        f"driver merge {merge_ms:.2f} ms an image):"
    )
    for nodes in (1, 4, 16, 64, 256):
        workers = nodes * 16 * 1000 / cpu_ms
        merge = 1000 / merge_ms
        rate = min(workers, merge)
        bound = "CPUs" if workers < merge else "driver merge (SQLite)"
        hours = 10_000_000 / rate / 3600
        print(
            f"    {nodes:4d} nodes: {rate:7.0f} img/s, bound by {bound:21s}; "
            f"10M images in {hours:5.1f} h (+{fixed:.0f} s start)"
        )


def _slope(build, data: np.ndarray, n1: int, n2: int) -> float:
    """Bytes a vector of an index file: the size difference between n1 and n2 vectors."""
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        for n in (n1, n2):
            index = build()
            index.add(np.arange(n, dtype=np.int64), data[:n])
            index.save(Path(tmp) / f"{n}.faiss")
            sizes.append((Path(tmp) / f"{n}.faiss").stat().st_size)
    return (sizes[1] - sizes[0]) / (n2 - n1)


class _PqOnly:
    """An IVF-PQ index (8-bit PQ, 64 bytes a vector), the smallest alternative."""

    def __init__(self, trained) -> None:
        self.index = faiss.clone_index(trained)

    def add(self, ids, vectors) -> None:
        self.index.add_with_ids(vectors, ids)

    def save(self, path) -> None:
        faiss.write_index(self.index, str(path))


def memory() -> None:
    """Index bytes per vector of the library's kinds, measured, projected to 10M and 100M."""
    faiss.omp_set_num_threads(1)  # OpenMP spinning on a shared machine costs minutes
    _paths, base = library_vectors()
    rng = np.random.default_rng(0)
    data = np.concatenate([base] * 6)[:12_000]
    data = l2_normalize(data + 0.02 * rng.standard_normal(data.shape).astype(np.float32))
    dim, n1, n2 = data.shape[1], 4_000, 12_000
    sample = data[:3000]  # the size of a code does not depend on how well it is trained
    ivf = train_index(sample, 8000, IVF)
    pq = faiss.index_factory(dim, f"IVF64,PQ{dim // 20}", faiss.METRIC_INNER_PRODUCT)
    pq.train(sample)
    measured = {
        FLAT: _slope(lambda: VectorIndex.empty(dim), data, n1, n2),
        IVF: _slope(lambda: train_index(sample, 8000, IVF), data, n1, n2),
        "ivf-pq (not used)": _slope(lambda: _PqOnly(pq), data, n1, n2),
    }
    print(f"index memory (d={dim}; file bytes a vector, slope from {n1} to {n2} vectors):")
    print(f"  the library's ivf kind: {ivf.describe()}")
    for kind, per_vector in measured.items():
        # An IndexIDMap2 (flat) also keeps an id -> position hash map in memory (~32 B a
        # vector); an IVF keeps its coarse centroids (nlist x d x 4 B).
        ram = per_vector + (32 if kind == FLAT else 0)
        cells = []
        for total in (10_000_000, 100_000_000):
            fixed = IvfParams.for_size(total, dim).nlist * dim * 4 if kind != FLAT else 0
            cells.append(f"{(total * ram + fixed) / 2**30:6.1f} GiB")
        sizes = f"{per_vector:7.1f} B file, {ram:7.1f} B in memory"
        print(f"  {kind:18s} {sizes}: 10M {cells[0]}, 100M {cells[1]}")
    print(
        f"  building an IVF by pages holds the training sample ({TRAIN_MAX} x {dim} float32 = "
        f"{TRAIN_MAX * dim * 4 / 2**20:.0f} MiB) and one page ({BUILD_CHUNK} vectors = "
        f"{BUILD_CHUNK * dim * 4 / 2**20:.0f} MiB), never all the vectors"
    )


def main() -> None:
    ap = parser(__doc__, json_summary=False)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--only", choices=["throughput", "memory"], default=None)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    args = ap.parse_args()
    if args.only != "memory":
        throughput(args)
    if args.only != "throughput":
        memory()


if __name__ == "__main__":
    main()
