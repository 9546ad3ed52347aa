"""Benchmark: `lookalike tag` on a 100k-image library, time and accuracy (issue 17, item 6).

The library is SYNTHETIC: 100,000 vectors made from the long-tailed dev library's real
embeddings, each a mixture of two or three real images of ONE class (Dirichlet
weights) plus Gaussian noise, so every synthetic image has a class. Class sizes are
Zipf-like (the class of rank r holds a share proportional to r^-1.1); 10 classes are
never labelled, the others get ``--labels`` labels each (through `lookalike labels
import`). Then `lookalike tag --json` runs through the real CLI, as a user runs it, and
in the same run `lookalike tag --without-clusters --json` (the head alone).

Printed: the time of `lookalike tag` (goal: <= 60 s on the 2-core dev machine), wall
and CPU, its ratio to `lookalike info` on the same library in the same run (start-up
plus opening it), known-class accuracy (an "unknown" is a miss) and novel-class images
left unknown. With ``--in-process``, also the CPU time of ``tag_vectors`` on the same
vectors with the default head, with the library's clusters and without, in the same run.

Usage:
    python scripts/bench_tag_scale.py [--images 100000] [--labels 10] [--seed 0]
        [--in-process]
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_support.cli import cli
from bench_support.data import bench_cache, long_tailed_library
from bench_support.figures import emit, parser
from bench_support.long_tail import library_classes
from bench_support.synthetic import NOISE, NOWHERE
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library

CHUNK = 5_000


def class_mixtures(vectors, classes, n, seed):
    """n synthetic vectors, each a mixture of real vectors of one class; their classes."""
    rng = np.random.default_rng(seed)
    names = sorted(set(classes.tolist()) - {"distractors"})
    order = rng.permutation(names)
    share = np.arange(1, len(order) + 1, dtype=float) ** -1.1
    which = rng.choice(len(order), n, p=share / share.sum())
    spread = vectors.std(0) * NOISE
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    members = {c: np.flatnonzero(classes == c) for c in order}
    for k, name in enumerate(order):
        rows = np.flatnonzero(which == k)
        picks = rng.choice(members[name], size=(len(rows), 3))
        w = rng.dirichlet(np.ones(3), size=len(rows)).astype(np.float32)
        mixed = np.einsum("ij,ijd->id", w, vectors[picks])
        out[rows] = l2_normalize(l2_normalize(mixed) + rng.standard_normal(mixed.shape) * spread)
    return out, order[which]


def model_of_long_tailed() -> ModelInfo:
    root = bench_cache() / "long-tailed-library"
    with Library.open(root if (root / "catalog.sqlite").exists() else long_tailed_library()) as lib:
        return ModelInfo.from_json(lib.catalog.get_meta("model"))


def write_library(root: Path, x: np.ndarray) -> list[str]:
    paths = [f"{NOWHERE}{i}.jpg" for i in range(len(x))]
    with Library.create(root, model_of_long_tailed()) as lib:
        for start in range(0, len(x), CHUNK):
            items = [
                NewImage(paths[i], 1, 1, f"{i:032x}", 1, 1, x[i], None)
                for i in range(start, min(start + CHUNK, len(x)))
            ]
            with lib.catalog.transaction() as conn:
                lib.catalog.write_images(conn, items)
    return paths


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--novel", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-process", action="store_true", help="time tag_vectors in process too")
    args = ap.parse_args()
    vectors, classes = library_classes()
    x, truth = class_mixtures(vectors, classes, args.images, args.seed)
    rng = np.random.default_rng(args.seed)
    names = sorted(set(truth.tolist()))
    novel = set(rng.choice(names, args.novel, replace=False).tolist())
    with tempfile.TemporaryDirectory(prefix="bench-tag-scale-") as tmp:
        root = Path(tmp) / "library"
        paths = write_library(root, x)
        labelled = []
        for name in names:
            if name in novel:
                continue
            rows = np.flatnonzero(truth == name)
            take = rng.choice(rows, min(args.labels, max(1, len(rows) // 2)), replace=False)
            labelled += [(paths[r], name) for r in take]
        with open(Path(tmp) / "labels.csv", "w", newline="") as f:
            csv.writer(f).writerows([("path", "label"), *labelled])
        cli("labels", "import", str(Path(tmp) / "labels.csv"), library=root)
        info = cli("info", "--json", library=root)
        tagged = cli("tag", "--json", library=root)
        alone = cli("tag", "--without-clusters", "--json", library=root)
    row_of = {p: i for i, p in enumerate(paths)}

    def figures(run) -> tuple[float, float]:
        results = json.loads(run.stdout)
        got = np.array([r["label"] or "" for r in results], dtype=object)
        true = truth[[row_of[r["path"]] for r in results]]
        is_novel = np.isin(true, list(novel))
        return (
            float(np.mean(got[~is_novel] == true[~is_novel])),
            float(np.mean(got[is_novel] == "")),
        )

    known_accuracy, novel_unknown = figures(tagged)
    print(
        f"{args.images} synthetic images ({len(names)} classes, Zipf sizes), "
        f"{len(labelled)} labels, {args.novel} classes never labelled"
    )
    print(
        f"lookalike tag: {tagged.seconds:.1f}s wall, {tagged.cpu_seconds:.1f}s CPU (goal <= "
        f"60 s) = {tagged.seconds / info.seconds:.1f}x `lookalike info` ({info.seconds:.2f}s "
        f"wall, {info.cpu_seconds:.1f}s CPU); known accuracy {known_accuracy:.3f}, novel "
        f"unknown {novel_unknown:.3f}"
    )
    alone_known, alone_novel = figures(alone)
    print(
        f"lookalike tag --without-clusters (same run): {alone.seconds:.1f}s wall, "
        f"{alone.cpu_seconds:.1f}s CPU ({tagged.seconds / alone.seconds:.2f}x with the "
        f"clusters); known accuracy {alone_known:.3f}, novel unknown {alone_novel:.3f}"
    )
    if args.in_process:
        in_process(x, [row_of[p] for p, _ in labelled], [lab for _, lab in labelled])
    emit(
        args,
        {
            "tag_seconds": tagged.seconds,
            "info_seconds": info.seconds,
            "known_accuracy": known_accuracy,
            "novel_unknown": novel_unknown,
        },
    )


def in_process(x: np.ndarray, seeds: list[int], labels: list[str]) -> None:
    """CPU seconds of tag_vectors with the default head, with and without the clusters."""
    from lookalike.classifier.tagging.tagger import tag_vectors

    rows = np.array(seeds)
    cpu = {}
    for clusters in (False, True):
        start = time.process_time()
        tag_vectors(x, rows, labels, clusters=clusters)
        cpu[clusters] = time.process_time() - start
    print(
        f"tag_vectors in process: with the clusters {cpu[True]:.1f}s CPU, the head alone "
        f"{cpu[False]:.1f}s CPU ({cpu[True] / cpu[False]:.2f}x)"
    )


if __name__ == "__main__":
    main()
