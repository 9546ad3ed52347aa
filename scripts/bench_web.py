"""Web search latency and throughput: `lookalike serve` against a naive server, same run.

Builds (once, cached in --workdir, by default in the bench cache) a library of --n
images: --real dev images indexed for real, the rest synthetic vectors (random mixtures
of two or three real embeddings plus noise, renormalised, so the index is as hard to
search as a real library) written straight into the catalog, then indexed by the
library itself (its own index choice).
Then, for each server, over loopback:
  * single client: p50/p99 latency of POST /api/search with a JPEG upload (keep-alive);
  * --clients concurrent clients: throughput and error count over a bounded number
    of requests.
The reference is the naive way: the same Flask app on Flask's development server
with the eager torch model ("efficientnet-lite0:torch") instead of ONNX Runtime.

    python scripts/bench_web.py [--n 100000] [--index ivf] [--mode fast|robust]
        [--requests 200] [--clients 8] [--json]
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from bench_support.data import bench_cache, dev_files
from bench_support.figures import emit, parser
from lookalike.indexer.batch import IndexOptions, index_paths
from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library

BUILD_VERSION = 1

REFERENCE_SERVER = r"""
import json, sys
from lookalike.indexer.models.registry import load_embedder
from lookalike.webapp import create_app
config = {"EMBEDDER": load_embedder("efficientnet-lite0:torch"), "WARM_UP": True}
config.update(json.loads(sys.argv[2]))
app = create_app(sys.argv[1], test_config=config)
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
print(f"serving {sys.argv[1]} on http://127.0.0.1:{port}/", flush=True)
app.run(host="127.0.0.1", port=port, threaded=True)
"""


# -- the library ------------------------------------------------------------------
def build_library(root: Path, n: int, real: int, index_kind: str, seed: int = 0) -> str:
    """Index ``real`` dev images, then add ``n - real`` synthetic vectors (see docstring).

    ``index_kind`` "auto" keeps the library's own choice for its size; "ivf" rebuilds
    the index as the library does for a large library that shrank back to ``n``.
    Returns a description of the index.
    """
    stamp = root / "bench-web.json"
    want = {"version": BUILD_VERSION, "n": n, "real": real, "seed": seed, "index": index_kind}
    if stamp.exists() and json.loads(stamp.read_text())["build"] == want:
        kind = json.loads(stamp.read_text())["structure"]
        print(f"library: reusing {root} ({n} images, index {kind})", flush=True)
        return kind
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    embedder = load_embedder()
    files = [str(p) for p in dev_files()[:real]]
    with Library.create(root, embedder.info) as lib:
        index_paths(lib, embedder, files, IndexOptions(progress=False))
        _ids, base = lib.catalog.vectors(dim=embedder.info.dim)
        rng = np.random.default_rng(seed)
        todo = n - len(base)
        chunk = 5000
        for offset in range(0, todo, chunk):
            m = min(chunk, todo - offset)
            picks = rng.integers(0, len(base), size=(m, 3))
            weights = rng.dirichlet([1.0, 1.0, 0.5], size=m).astype(np.float32)
            vectors = np.einsum("mk,mkd->md", weights, base[picks])
            vectors = l2_normalize(vectors + rng.normal(0, 0.01, vectors.shape).astype(np.float32))
            items = [
                NewImage(
                    f"/synthetic/{offset + i:07d}.jpg",
                    0,
                    0,
                    f"synthetic{offset + i:024d}",
                    640,
                    480,
                    vectors[i],
                    None,
                )
                for i in range(m)
            ]
            with lib.catalog.transaction() as conn:
                lib.catalog.write_images(conn, items)
        with lib.locked():
            index = lib.sync_index()
            if index_kind != "auto" and index.kind != index_kind:
                index = lib.rebuild_index(current_kind=index_kind)
        kind = index.describe()
    stamp.write_text(json.dumps({"build": want, "structure": kind}))
    print(
        f"library: built {root} with {n} images ({len(files)} real), index {kind} "
        f"of {index.ntotal} vectors in {time.perf_counter() - start:.0f}s",
        flush=True,
    )
    return kind


# -- servers -------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.port = self._wait_for_port()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_healthy()

    def _wait_for_port(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} server exited: {self.proc.wait()}")
            found = re.search(r"on http://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise RuntimeError(f"{self.name} server did not start")

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line)

    def _wait_healthy(self) -> None:
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} server never became healthy")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def multipart(data: bytes, k: int) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n{k}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection posting searches."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def search(self, body: bytes, content_type: str) -> tuple[bool, float, float]:
        headers = {"Content-Type": content_type, "X-Requested-With": "bench"}
        start = time.perf_counter()
        try:
            self.conn.request("POST", "/api/search", body, headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return False, time.perf_counter() - start, 0.0
        elapsed = time.perf_counter() - start
        if response.status != 200:
            return False, elapsed, 0.0
        doc = json.loads(payload)
        return bool(doc["results"]), elapsed, doc.get("took_ms", 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browse_ms(port: int, n: int) -> dict:
    """Median latency of a browse page at the start and near the end of the library."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = {}
    for name, after in (("first", 0), ("last", max(0, n - 100))):
        times = []
        for _ in range(15):
            start = time.perf_counter()
            conn.request("GET", f"/api/images?filter=unlabelled&after={after}&limit=60")
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - start) * 1000)
            assert response.status == 200, response.status
        out[f"browse_{name}_page_ms"] = round(statistics.median(times), 2)
    return out


def measure(server: Server, queries: list[tuple[bytes, str]], requests: int, clients: int) -> dict:
    single = Client(server.port)
    for body, ctype in queries[:10]:  # warm-up
        single.search(body, ctype)
    latencies, server_ms, errors = [], [], 0
    for i in range(requests):
        ok, elapsed, took = single.search(*queries[i % len(queries)])
        errors += not ok
        latencies.append(elapsed * 1000)
        server_ms.append(took)
    latencies.sort()
    total = requests * 2
    counts = [total // clients + (i < total % clients) for i in range(clients)]
    failures = [0] * clients

    def worker(slot: int) -> None:
        client = Client(server.port)
        for j in range(counts[slot]):
            ok, _e, _t = client.search(*queries[(slot * 7 + j) % len(queries)])
            failures[slot] += not ok

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    cpu_start = cpu_seconds(server.proc.pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu_ms = (cpu_seconds(server.proc.pid) - cpu_start) * 1000 / total
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
        "server_p50_ms": round(statistics.median(server_ms), 2),
        "single_errors": errors,
        "searches_per_s": round(total / wall, 1),
        "concurrent_errors": sum(failures),
        "concurrent_requests": total,
        # Server CPU time per search under load: unlike wall time it barely depends on
        # what else the machine runs; 2 cores / this = searches/s on 2 idle cores.
        "server_cpu_ms_per_search": round(cpu_ms, 2),
        "projected_searches_per_s_2_idle_cores": round(2000 / cpu_ms, 1) if cpu_ms else None,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=100_000, help="library size")
    ap.add_argument("--real", type=int, default=300, help="real dev images in the library")
    ap.add_argument("--requests", type=int, default=200, help="single-client requests")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=8, help="server request threads")
    ap.add_argument(
        "--index",
        choices=["auto", "ivf"],
        default="auto",
        help="auto: the library's own choice for --n; ivf: the approximate index",
    )
    ap.add_argument("--workdir", type=Path, default=bench_cache() / "web", help="library cache")
    ap.add_argument(
        "--mode",
        choices=["fast", "robust"],
        default="fast",
        help="serve --search-mode: fast (the server's default: one model run per query, "
        "the work the reference does) or robust (two views + geometric re-ranking; the "
        "reference then does the same)",
    )
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()

    library = args.workdir / f"library-{args.n}-{args.index}"
    structure = build_library(library, args.n, min(args.real, args.n), args.index)
    queries = [multipart(p.read_bytes(), 10) for p in dev_files()[-60:]]
    flags = ["--search-mode", args.mode]
    robust = args.mode == "robust"
    same_work = {"SEARCH_RERANK": robust, "SEARCH_MULTIVIEW": robust}
    serve = ["-m", "lookalike", "serve", "--library", str(library), "--port", "0"]
    runs = {
        "lookalike serve (waitress, ONNX)": [
            sys.executable,
            *serve,
            *["--threads", str(args.threads), *flags],
        ],
    }
    if not args.no_reference:
        reference = [REFERENCE_SERVER, str(library), json.dumps(same_work)]
        runs["naive (Flask dev server, torch eager)"] = [sys.executable, "-c", *reference]
    figures = {}
    for name, command in runs.items():
        server = Server(name, command)
        try:
            figures[name] = measure(server, queries, args.requests, args.clients)
            if name.startswith("lookalike"):
                figures[name].update(browse_ms(server.port, args.n))
        finally:
            server.stop()
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    ours = figures["lookalike serve (waitress, ONNX)"]
    doc = {
        "n": args.n,
        "index": structure,
        "search": "two views + re-ranking" if robust else "one view, no re-ranking",
        "clients": args.clients,
        "cores": os.cpu_count(),
    }
    doc.update(ours)
    if not args.no_reference:
        ref = figures["naive (Flask dev server, torch eager)"]
        doc["reference"] = ref
        doc["p50_speedup"] = round(ref["p50_ms"] / ours["p50_ms"], 2)
        doc["throughput_ratio"] = round(ours["searches_per_s"] / ref["searches_per_s"], 2)
        print(
            f"p50 {ours['p50_ms']} ms vs {ref['p50_ms']} ms ({doc['p50_speedup']}x faster); "
            f"{ours['searches_per_s']} vs {ref['searches_per_s']} searches/s with "
            f"{args.clients} clients ({doc['throughput_ratio']}x); errors "
            f"{ours['single_errors'] + ours['concurrent_errors']}"
        )
    emit(args, doc)


if __name__ == "__main__":
    main()
