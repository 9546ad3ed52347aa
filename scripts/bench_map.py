"""The library map: computation time, payload size, how well it keeps classes together,
and first paint and frame rate of the Map page in headless Chromium.

Vectors: the long-tailed dev library (3,819 real embeddings, the class of each from its
folder), and --sizes libraries made from them (each a real embedding plus Gaussian noise
of half the per-dimension spread, renormalised; its class is its source's). For each:
  * seconds to compute the map (``projection.project``; wall and CPU, all threads, or
    ``--threads`` of them) and, as the reference in the same run, two PCA axes; the
    ratio of the two;
  * seconds to extend the map by 1% new images (after an index run);
  * agreement: the share of each point's 10 nearest points on the map of its own class
    (on a sample of 5,000), for the map, the PCA reference and the full vectors;
  * the /api/map/points payload size (10 bytes an image).
With --browser N (default 100000), a library of N such vectors under the default
model's description is served by `lookalike serve` and the Map page opened in
Chromium (/usr/bin/chromium): time from navigation to the first drawn frame; frames per
second and the mean time of a frame's drawing while panning and while zooming (every
zoomed frame redraws all the points), against the reference in the same page: the frames
per second with nothing to draw (headless Chromium caps them all at its display rate).

    python scripts/bench_map.py [--sizes 20000,100000] [--browser 100000] [--threads N]
        [--browser-only] [--json]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from bench_support.cli import served
from bench_support.data import class_of, library_vectors, long_tailed_library
from bench_support.figures import emit, parser
from lookalike.classifier.clustering import projection
from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library

NOISE = 0.5
SAMPLE = 5_000


def noisy_copies(real: np.ndarray, classes: np.ndarray, n: int, seed: int):
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(real), n)
    x = real[pick] + rng.standard_normal((n, real.shape[1]), dtype=np.float32) * (
        real.std(0) * NOISE
    )
    return l2_normalize(x), classes[pick]


def agreement(points: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> float:
    points = np.ascontiguousarray(points, dtype=np.float32)
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    rows = rng.choice(len(points), min(SAMPLE, len(points)), replace=False)
    _, nearest = index.search(points[rows], 11)
    return float((classes[nearest[:, 1:]] == classes[rows, None]).mean())


def pca2(x: np.ndarray) -> np.ndarray:
    """The reference: the two top PCA axes (covariance eigenvectors, as the map's PCA)."""
    sample = x[: projection.FIT_SAMPLE]
    mean = sample.mean(0)
    _, vectors = np.linalg.eigh((sample - mean).T.astype(np.float64) @ (sample - mean))
    return (x - mean) @ vectors[:, -2:].astype(np.float32)


def measure(name: str, x: np.ndarray, classes: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    ids = np.arange(len(x))
    start, cpu = time.perf_counter(), time.process_time()
    made = projection.project(ids, x)
    ours, ours_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    reference = pca2(x)
    ref_s = time.perf_counter() - start
    extra, _ = noisy_copies(x, classes, max(1, len(x) // 100), seed=1)
    start = time.perf_counter()
    projection.extend(made, np.arange(len(x) + len(extra)), np.vstack([x, extra]))
    extend_s = time.perf_counter() - start
    row = {
        "library": name,
        "images": len(x),
        "map_s": round(ours, 2),
        "map_cpu_s": round(ours_cpu, 2),
        "pca2_s": round(ref_s, 3),
        "ratio": round(ours / max(ref_s, 1e-9), 1),
        "extend_1pct_s": round(extend_s, 2),
        "agreement_map": round(agreement(made.xy, classes, rng), 3),
        "agreement_pca2": round(agreement(reference, classes, rng), 3),
        "agreement_full": round(agreement(x, classes, rng), 3),
        "payload_mb": round((4 + 10 * len(x)) / 1e6, 2),
    }
    print(
        f"{name:>10} {len(x):>7} images: map {row['map_s']:.1f} s, CPU {row['map_cpu_s']:.1f} "
        f"s (PCA-2 reference "
        f"{row['pca2_s']:.2f} s, x{row['ratio']}), extend by 1% {row['extend_1pct_s']:.2f} s; "
        f"10-NN of the same class: map {row['agreement_map']:.3f}, PCA-2 "
        f"{row['agreement_pca2']:.3f}, full vectors {row['agreement_full']:.3f}; "
        f"payload {row['payload_mb']} MB",
        flush=True,
    )
    return row


# 120 frames, each moved 2 px (panning), or each zoomed 0.5% (every frame a full redraw
# of the points): frames drawn a second, the mean time of a frame's drawing, and how
# many times the points themselves were redrawn.
MOVE = """async (zoom) => {
    const s = window.lookalikeMap;
    const t0 = performance.now(), f0 = s.frames, d0 = s.drawMs, r0 = s.renders;
    for (let i = 0; i < 120; i++) {
        if (zoom) s.scale *= 1.005; else s.tx += 2;
        s.dirty = true;
        await new Promise((r) => requestAnimationFrame(r));
    }
    const frames = s.frames - f0;
    return {
        fps: frames / ((performance.now() - t0) / 1000),
        draw_ms: (s.drawMs - d0) / frames,
        renders: s.renders - r0,
    };
}"""
# The same 120 animation frames with nothing to draw: the browser's own rate.
IDLE = """async () => {
    const t0 = performance.now();
    for (let i = 0; i < 120; i++) await new Promise((r) => requestAnimationFrame(r));
    return 120 / ((performance.now() - t0) / 1000);
}"""


def browser_figures(x: np.ndarray) -> dict:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-map-"))
    info = load_embedder("efficientnet-lite0").info
    with Library.create(work / "lib", info) as lib, lib.catalog.transaction() as conn:
        items = [
            NewImage(f"/nonexistent/map/{i}.jpg", 1, 1, f"{i:032x}", 1, 1, v, None)
            for i, v in enumerate(x)
        ]
        lib.catalog.write_images(conn, items)
    try:
        with served(work / "lib") as url, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/map")  # the first load computes the map
            page.locator("#map-status").filter(has_text="coloured by").wait_for(timeout=900_000)
            page.reload()  # now the map is computed: what a person sees every other time
            page.locator("#map-status").filter(has_text="coloured by").wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            first_paint = page.evaluate("() => window.lookalikeMap.firstPaintMs")
            pan = page.evaluate(MOVE, False)
            zoom = page.evaluate(MOVE, True)
            idle = page.evaluate(IDLE)  # the reference: frames/s with nothing to draw
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "points": len(x),
        "first_paint_ms": round(first_paint),
        "pan_fps": round(pan["fps"], 1),
        "pan_draw_ms": round(pan["draw_ms"], 2),
        "pan_redraws": pan["renders"],
        "zoom_fps": round(zoom["fps"], 1),
        "zoom_draw_ms": round(zoom["draw_ms"], 2),
        "idle_fps": round(idle, 1),
        "pan_fps_ratio": round(pan["fps"] / idle, 2),
        "zoom_fps_ratio": round(zoom["fps"] / idle, 2),
    }
    print(
        f"browser, {len(x)} points: first paint {figures['first_paint_ms']} ms after the "
        f"page asked for the map; panning {figures['pan_fps']} frames/s (a frame "
        f"{figures['pan_draw_ms']} ms, the points redrawn {figures['pan_redraws']} times in "
        f"120 frames); zooming {figures['zoom_fps']} frames/s (a full redraw "
        f"{figures['zoom_draw_ms']} ms); with nothing to draw, same page: "
        f"{figures['idle_fps']} frames/s (pan {figures['pan_fps_ratio']}x, zoom "
        f"{figures['zoom_fps_ratio']}x of it)",
        flush=True,
    )
    return figures


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sizes", default="20000,100000")
    p.add_argument("--browser", type=int, default=100_000, help="points; 0: no browser")
    p.add_argument("--browser-only", action="store_true", help="no map computation figures")
    p.add_argument(
        "--threads", type=int, default=None, help="BLAS and OpenMP threads (default: all)"
    )
    args = p.parse_args()
    paths, real = library_vectors(long_tailed_library())
    classes = np.array([class_of(path) for path in paths])
    # threadpoolctl covers BLAS and OpenMP (t-SNE): one thread measures the work itself,
    # which on a loaded machine the spinning of a second thread inflates several times.
    with threadpool_limits(limits=args.threads):
        rows = [] if args.browser_only else [measure("dev", real, classes)]
        for size in [int(s) for s in args.sizes.split(",") if s and not args.browser_only]:
            x, y = noisy_copies(real, classes, size, seed=size)
            rows.append(measure("synthetic", x, y))
    figures: dict = {"maps": rows}
    if args.browser:
        figures["browser"] = browser_figures(noisy_copies(real, classes, args.browser, 7)[0])
    emit(args, figures)


if __name__ == "__main__":
    main()
