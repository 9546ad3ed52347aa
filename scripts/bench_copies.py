"""Copy detection: is the original found when the query is an edited copy of it?

Takes a library of the dev images, makes copies of a fixed random
sample of them with one edit (crop, resize, jpeg, rotate, mirror, grayscale,
colour) or two edits combined, queries the library with each copy and reports
recall@1 and recall@10 of the original per edit type, with the query latency.
The reference in the same run is the plain first stage (the CNN vector alone, no
mirrored query, no re-ranking); the default search is measured against it.

Sources with a near-duplicate in the library (the same photo twice, which the
dev data has) are left out, as "the original" is ambiguous for them. ``--extra N``
adds N synthetic distractors to the library: mixtures of the vectors of two or three
non-source images plus noise, renormalised, stored under paths that do not exist
(so the re-ranker cannot read them: they compete in the first stage only); in a
library with copy detection on, each gets a copy descriptor made the same way from
the real images' descriptors. ``--copy-model`` turns copy detection on for the
library (computed once, kept in it); mode ``verify`` is the search without the copy
descriptors, ``default`` with them.
``--absent N`` removes N more real images from the library and queries with a two-edit
copy of each: queries with no copy in the library, whose latency is reported apart
(the re-ranker verifies the most candidates for them).

Object queries: ``--objects N`` originals are pasted at 30-65% of the width into a
plain canvas; the ``--object`` box is compared with where the photo is (IoU), and the
original's rank with the box against the whole-canvas query.

Usage:
    python scripts/bench_copies.py [--library DIR] [--sources 150] [--pairs 3]
        [--extra 3000] [--absent 50] [--modes plain,views,verify,default] [--objects 60]
        [--strength normal|strong|harsh] [--copy-model sscd_distilled|none] [--json]

Without --library, the dev data (images/ and distractors/) is indexed into the bench
cache on the first run (minutes on 2 cores; with --copy-model, one library per model)
and reused after (--extra and --absent change a copy of it).
"""

from __future__ import annotations

import io
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench_support.data import dev_library, remove_images
from bench_support.edits import EDITS, STRENGTHS, make_queries, pick_sources, use_strength
from bench_support.figures import emit, parser
from bench_support.synthetic import NOWHERE
from lookalike.indexer.images import load_image
from lookalike.indexer.models.copy_model import load_copy_model
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store import copy_vectors
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library
from lookalike.search.searcher import Searcher


# -- the library ---------------------------------------------------------------------
def mixed(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n mixtures of two or three rows of ``pool`` (Dirichlet weights) plus noise of norm
    about 0.15: near real images, not copies of any."""
    dim = pool.shape[1]
    out = []
    for _j in range(n):
        parts = pool[rng.choice(len(pool), int(rng.integers(2, 4)), replace=False)]
        weights = rng.dirichlet(np.ones(len(parts)))
        noise = rng.normal(0, 0.15 / np.sqrt(dim), dim).astype(np.float32)
        out.append(l2_normalize((weights @ parts + noise)[None])[0])
    return np.stack(out)


def add_extra(
    root: Path, n: int, exclude: set[int], rng: np.random.Generator, copy_rng: np.random.Generator
) -> None:
    """n synthetic distractor vectors (see module docstring), written to the catalog.
    Their copy descriptors draw from ``copy_rng``, so that the copies made after this
    are the same with copy detection on or off."""
    with Library.open(root, readonly=False) as library:
        ids, vectors = library.catalog.vectors()
        keep = np.array([i not in exclude for i in ids.tolist()])
        items = [
            NewImage(f"{NOWHERE}extra-{j:06d}.jpg", 0, 0, f"extra{j}", 0, 0, vector, None)
            for j, vector in enumerate(mixed(vectors[keep], n, rng))
        ]
        with library.locked(), library.catalog.transaction() as conn:
            extra_ids = library.catalog.write_images(conn, items)
            if library.catalog.get_meta("copy_model"):  # and copy descriptors, made alike
                total = library.catalog.count_copy_vectors()
                _seq, got, rows = library.catalog.copy_vectors_since(0, total + 1)
                rows = rows[~np.isin(got, list(exclude))].astype(np.float32)
                library.catalog.write_copy_vectors(conn, extra_ids, mixed(rows, n, copy_rng))
        library.sync_index()


def add_copy_descriptors(root: Path, model_name: str) -> None:
    """Copy detection on for the bench library: compute its missing copy descriptors."""
    model = load_copy_model(model_name)
    with Library.open(root, readonly=False) as library, library.locked():
        copy_vectors.enable(library, model)
        done = copy_vectors.build(library, model)
    if done.computed:
        print(f"computed {done.computed} copy descriptors ({model_name})", file=sys.stderr)


# -- measuring -------------------------------------------------------------------------
MODES = {  # name: (multiview, rerank, copy descriptors, pixel check)
    "plain": (False, False, False, True),  # the reference: one vector per query, no second stage
    "views": (True, False, False, True),
    "verify": (True, True, False, True),  # re-ranking the model's candidates only
    "default": (True, True, True, True),  # and the copy descriptors' (where the library has them)
    # as verify and default without the pixel check after verification (search/pixels.py)
    "verify-nopixel": (True, True, False, False),
    "default-nopixel": (True, True, True, False),
}
FALSE_MARKS: dict[str, int] = {}  # per mode: queries where another image was marked "copy"


def run_mode(searcher, queries, multiview: bool, rerank: bool, copies=True, pixel=True):
    """Rank of the original for each query (10 = not in the top 10), and latencies (s)."""
    searcher.multiview = multiview
    searcher.copies = copies
    options = searcher.reranker.options
    if not pixel:
        searcher.reranker.options = replace(options, same_picture=-1.0)
    ranks, seconds, false = [], [], 0
    for _kind, source, data in queries:
        if rerank:  # cold: a one-off query reads every candidate it verifies
            searcher.reranker.clear()
        start = time.perf_counter()
        results = searcher.search(data, 10, rerank=rerank)
        seconds.append(time.perf_counter() - start)
        ids = [r.id for r in results]
        ranks.append(ids.index(source) if source in ids else 10)
        false += any(r.match == "copy" and r.id != source for r in results)
    searcher.reranker.options = options
    return np.array(ranks), seconds, false


def table(queries, ranks: np.ndarray) -> dict[str, dict[str, float]]:
    kinds = [k for k, _s, _d in queries]
    groups = {name: [k == name for k in kinds] for name in EDITS}
    groups["any pair"] = ["+" in k for k in kinds]
    for name in EDITS:
        groups[f"pair with {name}"] = ["+" in k and name in k.split("+") for k in kinds]
    groups["all"] = [True] * len(kinds)
    out = {}
    for name, sel in groups.items():
        sel = np.array(sel)
        if sel.any():
            r = ranks[sel]
            out[name] = {
                "n": int(sel.sum()),
                "r1": float(np.mean(r < 1)),
                "r10": float(np.mean(r < 10)),
            }
    return out


def measure(root: Path, queries, modes: list[str], absent=()) -> tuple[int, dict]:
    with Searcher.open(root) as searcher:
        size = searcher.index.ntotal
        searcher.search(queries[0][2], 10)  # load the model outside the timings
        results = {}
        for mode in modes:
            ranks, seconds, false = run_mode(searcher, queries, *MODES[mode])
            absent_seconds = run_mode(searcher, absent, *MODES[mode])[1] if absent else []
            results[mode] = (table(queries, ranks), seconds, absent_seconds)
            FALSE_MARKS[mode] = false
            tab = results[mode][0]
            print(
                f"{mode}: r@1 {tab['all']['r1']:.3f}, r@10 {tab['all']['r10']:.3f}, "
                f"p50 {statistics.median(seconds) * 1000:.1f} ms, another image marked copy "
                f"in {false} of {len(queries)} queries",
                file=sys.stderr,
            )
    return size, results


# -- object queries -------------------------------------------------------------------
def pasted(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, tuple[int, int, int, int]]:
    """The photo at 30-65% of the width of a plain, slightly noisy canvas; and where it is."""
    w, h = 640, 480
    base = rng.integers(120, 245, 3).astype(np.float32)
    noise = rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    canvas = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    scale = min(rng.uniform(0.3, 0.65) * w / img.width, 0.9 * h / img.height)
    obj = img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))))
    x, y = int(rng.integers(0, w - obj.width + 1)), int(rng.integers(0, h - obj.height + 1))
    canvas.paste(obj, (x, y))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue(), (x, y, x + obj.width, y + obj.height)


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def measure_objects(root: Path, sources, rng: np.random.Generator) -> dict:
    """Pasted photos: the --object box against the truth, and recall with and without it."""
    ious, whole, found, seconds = [], [], [], []
    with Searcher.open(root) as searcher:
        for image_id, path in sources:
            data, truth = pasted(load_image(path).image, rng)
            ids = [r.id for r in searcher.search(data, 10)]
            whole.append(ids.index(image_id) if image_id in ids else 10)
            start = time.perf_counter()
            out = searcher.search_object(data, 10)
            seconds.append(time.perf_counter() - start)
            ids = [r.id for r in out.results]
            found.append(ids.index(image_id) if image_id in ids else 10)
            ious.append(iou(out.box, truth))
    whole_r, found_r = np.array(whole), np.array(found)
    summary = {
        "n": len(sources),
        "iou_mean": round(float(np.mean(ious)), 3),
        "iou>=0.5": round(float(np.mean(np.array(ious) >= 0.5)), 3),
        "whole_r1": round(float(np.mean(whole_r < 1)), 3),
        "whole_r10": round(float(np.mean(whole_r < 10)), 3),
        "object_r1": round(float(np.mean(found_r < 1)), 3),
        "object_r10": round(float(np.mean(found_r < 10)), 3),
        "object_p50_ms": round(statistics.median(seconds) * 1000, 1),
    }
    print(
        f"objects pasted into plain canvases ({summary['n']}): box IoU mean "
        f"{summary['iou_mean']:.3f} (>= 0.5: {summary['iou>=0.5']:.3f}); original found "
        f"r@1/r@10 whole image {summary['whole_r1']:.3f}/{summary['whole_r10']:.3f}, "
        f"--object {summary['object_r1']:.3f}/{summary['object_r10']:.3f}; "
        f"--object p50 {summary['object_p50_ms']:.1f} ms"
    )
    return summary


def report(results: dict, size: int, args, n_queries: int, n_sources: int) -> dict:
    print(
        f"library: {size} images ({args.extra} synthetic); {n_queries} copies of "
        f"{n_sources} originals, seed {args.seed}"
    )
    print(f"{'edit':<22}{'n':>5}" + "".join(f"{m + ' r@1':>14}{m + ' r@10':>14}" for m in results))
    first = next(iter(results.values()))[0]
    for name, row in first.items():
        cells = "".join(
            f"{results[m][0][name]['r1']:>14.3f}{results[m][0][name]['r10']:>14.3f}"
            for m in results
        )
        print(f"{name:<22}{row['n']:>5}{cells}")
    summary: dict = {"n_library": size, "n_queries": n_queries}
    for mode, (tab, seconds, absent) in results.items():
        p50 = statistics.median(seconds) * 1000
        p95 = float(np.percentile(seconds, 95)) * 1000
        false = FALSE_MARKS.get(mode, 0)
        print(
            f"{mode}: query p50 {p50:.1f} ms, p95 {p95:.1f} ms; another image marked copy in "
            f"{false} of {n_queries} queries"
        )
        summary[mode] = {
            "r1_single": round(float(np.mean([tab[e]["r1"] for e in EDITS])), 4),
            "r10_single": round(float(np.mean([tab[e]["r10"] for e in EDITS])), 4),
            "r1_pairs": round(tab["any pair"]["r1"], 4) if "any pair" in tab else None,
            "r10_pairs": round(tab["any pair"]["r10"], 4) if "any pair" in tab else None,
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "false_copy_marks": false,
        }
        if absent:
            a50, a95 = statistics.median(absent) * 1000, float(np.percentile(absent, 95)) * 1000
            print(
                f"{mode}: {len(absent)} queries with no copy in the library: "
                f"p50 {a50:.1f} ms, p95 {a95:.1f} ms"
            )
            summary[mode]["absent_p50_ms"] = round(a50, 1)
    if "plain" in summary and "default" in summary:
        ratio = summary["default"]["p50_ms"] / max(summary["plain"]["p50_ms"], 1e-9)
        print(f"latency ratio default/plain (p50): {ratio:.2f}")
        summary["latency_ratio"] = round(ratio, 2)
    return summary


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "--library",
        type=Path,
        help="a library to use (copy descriptors are added to it); default: the dev data, "
        "indexed once into the bench cache",
    )
    ap.add_argument("--sources", type=int, default=150, help="originals to make copies of")
    ap.add_argument("--pairs", type=int, default=3, help="two-edit copies per original")
    ap.add_argument("--extra", type=int, default=3000, help="synthetic distractors to add")
    ap.add_argument(
        "--absent", type=int, default=50, help="real images removed, queried with a copy"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strength", choices=sorted(STRENGTHS), default="normal", help="edit ranges")
    ap.add_argument(
        "--modes", default="plain,views,verify,default", help="comma-separated: " + ",".join(MODES)
    )
    ap.add_argument(
        "--copy-model",
        default="sscd_distilled",
        help="copy detection for the library (computed once, kept in it): a copy model, or none",
    )
    ap.add_argument("--objects", type=int, default=60, help="pasted-object queries (0: none)")
    args = ap.parse_args()
    use_strength(args.strength)
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - set(MODES):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    copy_model = None if args.copy_model == "none" else args.copy_model
    if args.library and not (args.library / "catalog.sqlite").exists():
        ap.error(f"--library: no library at {args.library}")

    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-copies-"))
    try:
        root = args.library or dev_library(copy_model)
        if copy_model:
            add_copy_descriptors(root, copy_model)
        sources, gone = pick_sources(root, args.sources, rng, args.absent)
        if args.extra or gone:  # the library itself stays as it is
            shutil.copytree(root, work / "extra")
            root = work / "extra"
        if args.extra:
            copy_rng = np.random.default_rng([args.seed, 1])
            add_extra(root, args.extra, {i for i, _p in sources + gone}, rng, copy_rng)
            print(f"added {args.extra} synthetic distractors", file=sys.stderr)
        queries = make_queries(sources, args.pairs, rng)
        absent = []
        if gone:
            remove_images(root, [i for i, _p in gone])
            absent = make_queries(gone, 1, rng, singles=False)
        size, results = measure(root, queries, modes, absent) if modes else (0, {})
        objects = measure_objects(root, sources[: args.objects], rng) if args.objects else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = report(results, size, args, len(queries), len(sources)) if results else {}
    if objects is not None:
        summary["objects"] = objects
    emit(args, summary)


if __name__ == "__main__":
    main()
