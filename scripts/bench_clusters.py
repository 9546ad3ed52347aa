"""Benchmark: discovering never-labelled classes with `lookalike clusters` (issue 5).

Protocol (per seed): of the data's classes, 10 are never labelled and the others get
10 human labels each (in a copy of an indexed library of the dev data: `lookalike labels
remove`, then `labels import`); every other
image -- the rest of the labelled classes, all of the never-labelled ones, and (second
run) the distractors -- is clustered through the public CLI (`lookalike clusters --json`).
Printed: ARI and NMI over all unlabelled images (noise points as singletons, each
distractor its own class), the noise share, how many never-labelled classes appear as
a cluster holding >= 50% of the class at >= 0.8 purity, and seconds. The reference,
measured in the same run on the same images: plain HDBSCAN on a 50-d PCA with min
cluster size 5 (the issue's baseline).
Then the time to cluster 100k vectors (the library's embeddings plus noise), against
HDBSCAN on 20k of them. An oracle reference for the embeddings is printed too: the ARI of putting
every unlabelled image in the class with the nearest true centre (an oracle).

    python scripts/bench_clusters.py                      # the dev data, indexed once
    python scripts/bench_clusters.py --from-library DIR   # another indexed copy of it
    python scripts/bench_clusters.py --from-library DIR --seeds 0,1,2,3,4
    python scripts/bench_clusters.py --long-tailed --labels 10 --splits 10 [--zipf]
    python scripts/bench_clusters.py --long-tailed --first-split 10 --diagnose

--long-tailed is issue 17's protocol (scripts/bench_support/cluster_splits.py): the
long-tailed dev data (images/ + extra/ + distractors/, 51 classes of 31 to 435 images),
optionally Zipf-subsampled (--zipf: 5 to 1,000 a class), 10 classes never labelled and
--labels human labels for each other class, over --splits random class splits; printed
per split and worst + mean, with plain HDBSCAN (PCA-50, min cluster size 5) and the
centre oracle on the same split. The 100k timing then uses synthetic vectors.
--first-split N draws the splits N, N+1, ... (choose a method on one range of splits,
confirm it on another); --diagnose prints, per split, where each class's images went
(proposal pieces and noise), the proposals that mix two classes, and where ARI is lost:
the ARI an oracle repair of each kind of mistake gains alone (stray images, pieces of a
class apart from its main proposal, classes merged into another's, distractors inside
proposals), and the classes whose repair gains most.

Without --from-library, the dev data is indexed into the bench cache on the first run
(minutes) and reused after.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bench_support import cluster_splits
from bench_support.cli import cli
from bench_support.data import class_of, dev_library, long_tailed_library, remove_images
from bench_support.figures import parser
from lookalike.classifier.clustering.discovery import cluster_vectors
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.catalog import Catalog


def split(classes: list[str], seed: int, novel: int = 10) -> tuple[set[str], list[str]]:
    rng = np.random.default_rng(seed)
    order = [str(c) for c in rng.permutation(sorted(classes))]
    return set(order[:novel]), order[novel:]


def pick_labelled(files: dict[str, list[str]], seed: int) -> set[tuple[str, str]]:
    """(class, file name) of 10 files of each labelled class (``files``: class -> names)."""
    _novel, labelled = split([c for c in files if c], seed)
    rng = np.random.default_rng(seed)
    return {(c, str(f)) for c in sorted(labelled) for f in rng.choice(sorted(files[c]), 10, False)}


def truth_of(path: str) -> str:
    """Class of a dev image: its folder under images/ ('' for a distractor)."""
    parts = Path(path).parts
    if "images" in parts:
        return parts[parts.index("images") + 1]
    return ""


def relabel_copy(source: Path, work: Path, seed: int, distractors: bool) -> Path:
    """Copy an indexed library of the dev data; through the CLI, replace its labels by 10
    per labelled class (`lookalike labels remove`, then `labels import` of a CSV); without
    ``distractors``, take them out of the copy."""
    lib = work / "lib"
    shutil.copytree(source, lib)
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        rows = conn.execute("SELECT id, path FROM images ORDER BY id").fetchall()
    files: dict[str, list[str]] = {}
    for _i, path in rows:
        files.setdefault(truth_of(path), []).append(Path(path).name)
    chosen = pick_labelled(files, seed)
    folders = sorted({str(Path(p).parent) for _i, p in rows})
    cli("labels", "remove", *folders, library=lib)
    csv = work / "labels.csv"
    lines = [f"{p},{truth_of(p)}" for _i, p in rows if (truth_of(p), Path(p).name) in chosen]
    csv.write_text("path,label\n" + "\n".join(lines) + "\n")
    cli("labels", "import", str(csv), "--strict", library=lib)
    if not distractors:
        remove_images(lib, [i for i, p in rows if not truth_of(p)])
    return lib


def scores(groups: list[list[str]], noise: list[str], novel: set[str]) -> dict:
    paths = [p for g in groups for p in g] + noise
    pred = [k for k, g in enumerate(groups) for _p in g]
    pred += list(range(len(groups), len(groups) + len(noise)))  # noise: singletons
    truth = [truth_of(p) or f"distractor {k}" for k, p in enumerate(paths)]
    found = 0
    for c in novel:
        total = truth.count(c)
        for g in groups:
            inside = sum(truth_of(p) == c for p in g)
            if inside >= 0.5 * total and inside >= 0.8 * len(g):
                found += 1
                break
    return {
        "ari": adjusted_rand_score(truth, pred),
        "nmi": normalized_mutual_info_score(truth, pred),
        "noise": len(noise) / max(len(paths), 1),
        "novel_found": found,
    }


class Catalogued(NamedTuple):
    """What the references need of a library: vectors, their paths, which are unlabelled."""

    vectors: np.ndarray
    paths: list[str]
    unlabelled: np.ndarray


def read_library(lib: Path) -> Catalogued:
    cat = Catalog(lib / "catalog.sqlite", readonly=True)
    try:
        ids, vectors = cat.vectors()
        labelled = {r[0] for r in cat.conn.execute("SELECT image_id FROM labels")}
        paths = cat.paths(ids)
    finally:
        cat.close()
    rows = ids.tolist()
    unlabelled = np.array([i not in labelled for i in rows])
    return Catalogued(vectors, [paths[i] for i in rows], unlabelled)


def hdbscan_reference(data: Catalogued, novel: set[str]) -> tuple[dict, float]:
    """The issue's baseline on the same unlabelled images: HDBSCAN, PCA-50, mcs 5."""
    keep = data.unlabelled
    start = time.perf_counter()
    z = PCA(50, random_state=0).fit_transform(data.vectors[keep])
    pred = HDBSCAN(min_cluster_size=5, copy=True).fit_predict(z)
    seconds = time.perf_counter() - start
    unl = [p for p, k in zip(data.paths, keep, strict=True) if k]
    groups = [[p for p, k in zip(unl, pred, strict=True) if k == g] for g in set(pred) - {-1}]
    noise = [p for p, k in zip(unl, pred, strict=True) if k == -1]
    return scores(groups, noise, novel), seconds


def centre_oracle(data: Catalogued, novel: set[str]) -> dict:
    """Roughly what the embeddings allow (not a method, nor a strict bound): every
    unlabelled image put in the class whose centre (the mean of all its images, labelled
    or not) is nearest; the distractors singletons. It knows every class and its members."""
    truth = np.array([truth_of(p) for p in data.paths])
    classes = sorted(set(truth) - {""})
    centres = l2_normalize(np.stack([data.vectors[truth == c].mean(0) for c in classes]))
    keep = data.unlabelled & (truth != "")
    nearest = np.argmax(data.vectors[keep] @ centres.T, axis=1)
    unl = [p for p, k in zip(data.paths, keep, strict=True) if k]
    groups = [[p for p, k in zip(unl, nearest, strict=True) if k == g] for g in set(nearest)]
    gone = data.unlabelled & (truth == "")
    noise = [p for p, k in zip(data.paths, gone, strict=True) if k]
    return scores(groups, noise, novel)


def protocol(args, seed: int, work: Path, results: dict) -> Path:
    """Both runs of one seed (without, then with distractors); returns the library."""
    source = Path(args.from_library) if args.from_library else dev_library()
    for distractors in (False, True):
        lib = relabel_copy(source, work / f"seed{seed}-{distractors}", seed, distractors)
        for name, r in measure(lib, seed, distractors).items():
            results.setdefault((distractors, name), []).append(r)
    return lib


def measure(lib: Path, seed: int, distractors: bool) -> dict[str, dict]:
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        classes = {truth_of(r[0]) for r in conn.execute("SELECT path FROM images")} - {""}
    novel, _labelled = split(sorted(classes), seed)
    ran = cli("clusters", "--json", library=lib)
    doc, seconds = json.loads(ran.stdout), ran.seconds
    ours = scores([c["members"] for c in doc["clusters"]], doc["noise"], novel)
    data = read_library(lib)
    ref, ref_seconds = hdbscan_reference(data, novel)
    oracle = centre_oracle(data, novel)
    size = sum(len(c["members"]) for c in doc["clusters"]) + len(doc["noise"])
    print(f"seed {seed}, {'with' if distractors else 'without'} distractors, {size} images:")
    for name, r, sec in (
        ("lookalike clusters", ours, seconds),
        ("HDBSCAN PCA-50", ref, ref_seconds),
    ):
        print(
            f"  {name:19s} ARI {r['ari']:.3f}  NMI {r['nmi']:.3f}  noise {r['noise']:5.1%}  "
            f"novel classes found {r['novel_found']:2d}/10  {sec:5.1f}s"
        )
    print(
        f"  ratio: ARI {ours['ari'] / ref['ari']:.2f}x, noise "
        f"{ours['noise'] / max(ref['noise'], 1e-9):.2f}x (CLI seconds include start-up)",
    )
    print(f"  oracle: nearest true class centre, ARI {oracle['ari']:.3f}", flush=True)
    return {"lookalike clusters": ours, "HDBSCAN PCA-50": ref, "centre oracle": oracle}


def summary(results: dict) -> None:
    """Means over the seeds (min or max in brackets)."""
    for (distractors, name), rows in sorted(results.items()):
        ari = [r["ari"] for r in rows]
        found = [r["novel_found"] for r in rows]
        noise = [r["noise"] for r in rows]
        print(
            f"{len(rows)} seeds, {'with' if distractors else 'without'} distractors, "
            f"{name}: ARI {np.mean(ari):.3f} (min {min(ari):.3f}), novel found "
            f"{np.mean(found):.1f} (min {min(found)}), noise {np.mean(noise):.1%} "
            f"(max {max(noise):.1%})"
        )


def timing(source: Path, n: int = 100_000) -> None:
    """Cluster n vectors: the library's embeddings plus noise; 10 per class labelled for
    41 classes (by the source image's class), the rest unlabelled."""
    cat = Catalog(source / "catalog.sqlite", readonly=True)
    ids, real = cat.vectors()
    paths = cat.paths(ids)
    cat.close()
    truth = np.array([truth_of(paths[i]) for i in ids.tolist()])
    rng = np.random.default_rng(0)
    src = rng.integers(0, len(real), n)
    noisy = l2_normalize(real[src] + rng.normal(0, 0.02, (n, real.shape[1])).astype(np.float32))
    _novel, labelled = split(sorted(set(truth) - {""}), 0)
    lab = np.concatenate([rng.choice(np.flatnonzero(truth[src] == c), 10, False) for c in labelled])
    unl = rng.permutation(np.setdiff1d(np.arange(n), lab))
    print(f"timing: {len(real)} embeddings + gaussian noise (cosine ~0.8 to the original)")
    for size in (20_000, n):
        part = unl[: size - len(lab)]
        start = time.perf_counter()
        res = cluster_vectors(noisy[part], noisy[lab], list(truth[src[lab]]))
        ours = time.perf_counter() - start
        new = sum(c.label is None for c in res.clusters)
        line = f"  {size:,} vectors: lookalike clusters {ours:.1f}s ({new} new clusters, "
        line += f"{len(res.clusters) - new} near labels, {len(res.noise) / len(part):.1%} noise)"
        if size <= 20_000:
            start = time.perf_counter()
            z = PCA(50, random_state=0).fit_transform(noisy[part])
            HDBSCAN(min_cluster_size=5, copy=True).fit_predict(z)
            ref = time.perf_counter() - start
            line += f"; HDBSCAN PCA-50 {ref:.1f}s; ratio {ours / ref:.2f}x"
        print(line, flush=True)


def long_tailed(args, work: Path) -> None:
    """Issue 17's protocol over ``args.splits`` random splits (see the module docstring)."""
    source = long_tailed_library()
    cat = Catalog(source / "catalog.sqlite", readonly=True)
    ids, vectors = cat.vectors()
    path_of = cat.paths(ids)
    cat.close()
    paths = [path_of[int(i)] for i in ids]
    truth = np.array([class_of(p) for p in paths])
    if args.splits < 10:
        print(f"note: {args.splits} splits; the protocol asks for 10 or more")
    rows: dict[str, list[dict]] = {}
    for seed in range(args.first_split, args.first_split + args.splits):
        split = cluster_splits.make_split(truth, seed, args.labels, args.zipf)
        lib = work / f"split{seed}"
        shutil.copytree(source, lib)
        gone = np.setdiff1d(np.arange(len(ids)), split.keep)
        if len(gone):
            remove_images(lib, ids[gone].tolist())
        csv = work / f"labels{seed}.csv"
        lines = [f"{paths[r]},{c}" for r, c in sorted(split.labelled.items())]
        csv.write_text("path,label\n" + "\n".join(lines) + "\n")
        cli("labels", "import", str(csv), "--strict", library=lib)
        ran = cli("clusters", "--json", library=lib)
        doc = ran.last_json()
        unl = np.array([r for r in split.keep if int(r) not in split.labelled])
        figures = {
            "lookalike clusters": (
                cluster_splits.score(
                    [c["members"] for c in doc["clusters"]], doc["noise"], class_of, split.novel
                ),
                ran.seconds,
            ),
            "HDBSCAN PCA-50": _hdbscan_split(vectors, paths, unl, split.novel),
            "centre oracle": (_oracle_split(vectors, paths, truth, unl, split.novel), None),
        }
        sizes = np.bincount(np.unique(truth[split.keep], return_inverse=True)[1])
        print(
            f"split {seed}: {len(unl)} unlabelled of {len(split.keep)} images, class sizes "
            f"{sizes.min()}-{sizes.max()}, {len(split.labelled)} labels, novel: "
            f"{', '.join(sorted(split.novel))}"
        )
        for name, (r, sec) in figures.items():
            print(cluster_splits.line(name, r, sec), flush=True)
            rows.setdefault(name, []).append(r)
        if args.diagnose:
            kinds = [c["nearest_label"] if c["kind"] == "label" else "new" for c in doc["clusters"]]
            groups = [c["members"] for c in doc["clusters"]]
            print("\n".join(cluster_splits.confusion(groups, kinds, doc["noise"], class_of)))
            losses = cluster_splits.ari_losses(groups, doc["noise"], class_of)
            print("\n".join(cluster_splits.loss_lines(losses)))
        shutil.rmtree(lib)
    mode = f"long-tailed{' + Zipf' if args.zipf else ''}, {args.labels} labels a class"
    mode += f", splits {args.first_split}-{args.first_split + args.splits - 1}"
    print(f"{args.splits} splits, {mode}:")
    for name, got in rows.items():
        print(f"  {name:22s} {cluster_splits.worst_and_mean(got)}")


def _hdbscan_split(vectors, paths, unl, novel):
    start = time.perf_counter()
    z = PCA(50, random_state=0).fit_transform(vectors[unl])
    pred = HDBSCAN(min_cluster_size=5, copy=True).fit_predict(z)
    seconds = time.perf_counter() - start
    groups = [[paths[r] for r in unl[pred == g]] for g in sorted(set(pred) - {-1})]
    noise = [paths[r] for r in unl[pred == -1]]
    return cluster_splits.score(groups, noise, class_of, novel), seconds


def _oracle_split(vectors, paths, truth, unl, novel):
    """Every unlabelled image in the class whose true centre (all its images) is
    nearest; distractors as noise. It knows every class and its members."""
    real = unl[truth[unl] != cluster_splits.DISTRACTOR]
    classes = sorted(set(truth[real].tolist()))
    centres = l2_normalize(np.stack([vectors[truth == c].mean(0) for c in classes]))
    nearest = np.argmax(vectors[real] @ centres.T, axis=1)
    groups = [[paths[r] for r in real[nearest == g]] for g in sorted(set(nearest.tolist()))]
    noise = [paths[r] for r in unl[truth[unl] == cluster_splits.DISTRACTOR]]
    return cluster_splits.score(groups, noise, class_of, novel)


def synthetic_timing(n: int = 100_000, dim: int = 1280, classes: int = 200) -> None:
    """Cluster n synthetic vectors (``classes`` Gaussian classes of Zipf sizes around
    random unit centres, noise at cosine ~0.8), 10 labels for half the classes."""
    rng = np.random.default_rng(0)
    sizes = np.maximum(5, (n / np.sum(1 / np.arange(1, classes + 1)) / np.arange(1, classes + 1)))
    sizes = np.round(sizes * n / sizes.sum()).astype(int)
    centres = l2_normalize(rng.normal(size=(classes, dim)).astype(np.float32))
    cls = np.repeat(np.arange(classes), sizes)[:n]
    noise = rng.normal(0, 0.75 / np.sqrt(dim), (len(cls), dim)).astype(np.float32)
    x = l2_normalize(centres[cls] + noise)
    lab = np.concatenate([np.flatnonzero(cls == c)[:10] for c in range(0, classes, 2)])
    unl = np.setdiff1d(np.arange(len(x)), lab)
    names = [str(c) for c in cls[lab]]
    start, cpu = time.perf_counter(), time.process_time()
    res = cluster_vectors(x[unl], x[lab], names)
    ours, cpu = time.perf_counter() - start, time.process_time() - cpu
    # The reference in the same run: the method without its last two steps (the join of
    # new pieces by kNN links and the kNN vote; main before them).
    start, ref_cpu = time.perf_counter(), time.process_time()
    cluster_vectors(x[unl], x[lab], names, ClusterParams(join_share=None, vote_share=None))
    before, ref_cpu = time.perf_counter() - start, time.process_time() - ref_cpu
    # And the method with the fold and the join by links at 0.1 of the links (main before).
    start, old_cpu = time.perf_counter(), time.process_time()
    cluster_vectors(x[unl], x[lab], names, ClusterParams(fold_share=0.1, join_share=0.1))
    old, old_cpu = time.perf_counter() - start, time.process_time() - old_cpu
    sub = unl[:20_000]
    start = time.perf_counter()
    z = PCA(50, random_state=0).fit_transform(x[sub])
    HDBSCAN(min_cluster_size=5, copy=True).fit_predict(z)
    ref = time.perf_counter() - start
    print(
        f"timing, synthetic vectors ({classes} Zipf-sized classes, {dim}-d): "
        f"{len(x):,} vectors in {ours:.1f}s wall, {cpu:.1f}s CPU (all threads; wall on a "
        f"shared machine is longer) ({len(res.clusters)} proposals, "
        f"{len(res.noise) / len(unl):.1%} noise); HDBSCAN PCA-50 on 20,000 of them "
        f"{ref:.1f}s (ratio {ours / ref:.2f}x for 5x the vectors)"
    )
    print(
        f"  without the join by links and the kNN vote, the same vectors: {before:.1f}s "
        f"wall, {ref_cpu:.1f}s CPU (ratio, CPU: {cpu / ref_cpu:.2f}x)"
    )
    print(
        f"  with the fold and join by links at 0.1, the same vectors: {old:.1f}s wall, "
        f"{old_cpu:.1f}s CPU (ratio, CPU: {cpu / old_cpu:.2f}x)"
    )


def main() -> None:
    ap = parser(__doc__, json_summary=False)
    ap.add_argument("--from-library", help="an indexed library of the dev data to copy")
    ap.add_argument("--seeds", default="0", help="comma-separated split seeds")
    ap.add_argument("--no-timing", action="store_true", help="skip the 100k timing")
    ap.add_argument("--long-tailed", action="store_true", help="issue 17's protocol")
    ap.add_argument("--zipf", action="store_true", help="Zipf-subsample the classes")
    ap.add_argument("--labels", type=int, default=10, help="human labels a labelled class")
    ap.add_argument("--splits", type=int, default=10, help="random class splits (>= 10)")
    ap.add_argument("--first-split", type=int, default=0, help="seed of the first split")
    ap.add_argument("--diagnose", action="store_true", help="per split: where classes went")
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-clusters-") as tmp:
        if args.long_tailed:
            long_tailed(args, Path(tmp))
            if not args.no_timing:
                synthetic_timing()
            return
        for seed in [int(s) for s in args.seeds.split(",")]:
            lib = protocol(args, seed, Path(tmp), results)
        summary(results)
        if not args.no_timing:
            timing(lib)


if __name__ == "__main__":
    main()
