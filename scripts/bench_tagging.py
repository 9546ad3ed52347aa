"""Benchmark: auto-tagging with "unknown" on held-out classes, through the public CLI.

Protocol (issue 4): of the dev data's 51 classes, 41 are "known" with 10 human
labels each (a CSV through `lookalike labels import`), 10 are never labelled;
the distractors are never labelled either. `lookalike tag --json` then tags
every other image. Printed:

- known accuracy: share of the known classes' unlabelled images tagged with
  their class (an "unknown" counts as a miss);
- novel unknown: share of the never-labelled classes' images left unknown (and
  the same with the distractors counted as novel);
- the time `lookalike tag` took, and its ratio to `lookalike info` (CLI start-up
  plus opening the library) measured in the same run;
- the reference: plain 1-NN with a cosine threshold on the same vectors, at the
  threshold that leaves the same share of novel images unknown.

Long-tailed mode (issue 17, ``--long-tailed``): the vectors of the long-tailed dev
library (images/ + extra/ + distractors/, class = folder name), in process (the CLI's
``tag`` runs the same ``tag_vectors``). Each of ``--splits`` random splits holds
``--novel`` classes out as never labelled (the distractors are never labelled either),
gives every other class ``--labels`` labels (at most half its images), and with
``--zipf`` subsamples the classes to Zipf-like sizes (5 to 1,000 images, at most what a
class has). Printed per split, then worst and mean: known-class accuracy (an
abstention is a miss) and novel-class images left unknown for the tagger measured
(``--new``; by default ``proto-clusters``, the prototype head with the library's
clusters, as ``lookalike tag``; ``proto``: the head alone, ``tag --without-clusters``)
and the old one (``--old``: kNN label propagation; ``proto-alone``: the
prototype head as it was before its transductive novelty, the head alone today;
``proto-transductive``: with it, 10 neighbours, 12% of the simulated novel images
tagged, as it was measured as a candidate default; ``--share`` sets that share), the
distractors left unknown, the expected calibration error of the answers' confidence
per class-size bucket, and the prototype reference: class prototypes with one cosine
threshold chosen knowing the novel images, at the novel-unknown rate the new tagger
reached. With ``--diagnose``, per split and head: the known-class images' closed-set
accuracy (the best guess, tagged or not), the share left unknown and tagged wrong, the
worst known classes, and the novel classes most often tagged, as what; and what limits the tagger:
the best known accuracy reachable at 80% of the novel images unknown with a threshold
chosen knowing them (an oracle) on the prototype head's z-score of the image alone, on
the calibrated confidence, and on the transductive z-score (averaged over the image's
nearest library images), beside the closed-set ceiling.

Usage:
    python scripts/bench_tagging.py [--seed 0] [--heads proto,knn,linear,svm,mlp]
        [--from-library /tmp/lib1]   # copy an indexed library of the dev data (default:
                                     # the dev data indexed once into the bench cache)
    python scripts/bench_tagging.py --long-tailed [--labels 1,3,10,30] [--splits 10]
        [--zipf] [--novel 10] [--new proto-clusters|proto|proto-transductive]
        [--old knn|proto-alone|proto-transductive] [--share 0.12] [--diagnose]
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench_support.cli import cli
from bench_support.data import check_data, dev_library
from bench_support.figures import parser
from bench_support.long_tail import long_tailed
from lookalike.classifier.tagging.calibration import expected_calibration_error
from lookalike.indexer.store.catalog import Catalog


def split(classes: list[str], seed: int, known: int, per_class: int):
    rng = np.random.default_rng(seed)
    order = [str(c) for c in rng.permutation(classes)]
    known_classes = sorted(order[:known])
    labelled = []
    for c in known_classes:
        files = sorted(str(p) for p in (check_data() / "images" / c).glob("*.jpg"))
        labelled += [(p, c) for p in rng.choice(files, per_class, replace=False)]
    return set(known_classes), set(order[known:]), labelled


def reference_knn(library: Path, labelled, novel_rate: float) -> float:
    """Known accuracy of 1-NN + cosine threshold at the given novel-unknown rate."""
    cat = Catalog(library / "catalog.sqlite", readonly=True)
    try:
        ids, vectors = cat.vectors()
        paths = cat.paths(ids)
    finally:
        cat.close()
    row = {paths[int(i)]: r for r, i in enumerate(ids)}
    seeds = np.array([row[p] for p, _ in labelled])
    seed_labels = np.array([c for _, c in labelled])
    rest = np.setdiff1d(np.arange(len(ids)), seeds)
    sims = vectors[rest] @ vectors[seeds].T
    best, top = seed_labels[sims.argmax(1)], sims.max(1)
    truth = np.array([_class_of(paths[int(ids[r])]) for r in rest])
    is_known = np.isin(truth, seed_labels)
    novel = ~is_known & (truth != "")
    threshold = np.quantile(top[novel], novel_rate)
    return float(np.mean((top[is_known] >= threshold) & (best[is_known] == truth[is_known])))


def _class_of(path: str) -> str:
    parent = Path(path).parent
    return parent.name if parent.parent.name == "images" else ""


def copy_library(work: Path, source: str | None) -> Path:
    """A copy of ``source`` (default: the cached dev library) without any labels: the
    protocol's labels come from the CSV only."""
    library = work / "library"
    shutil.copytree(source or dev_library(), library)
    data = check_data()
    cli("labels", "remove", str(data / "images"), str(data / "distractors"), library=library)
    return library


def main() -> None:
    ap = parser(__doc__, json_summary=False)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--known", type=int, default=41)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument(
        "--heads", default="proto,knn", help="heads to tag with (proto: the default, with clusters)"
    )
    ap.add_argument("--from-library", default=None, help="an indexed library of the dev data")
    ap.add_argument("--long-tailed", action="store_true", help="the long-tailed protocol")
    ap.add_argument(
        "--labels",
        default="10",
        help="labels a class, comma-separated; LOW-HIGH: each class draws its own count "
        "(log-uniform)",
    )
    ap.add_argument(
        "--first-labels",
        action="store_true",
        help="label each class's first images in library order (a folder's first files, "
        "as `index --labels-per-class` does), not a random choice",
    )
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--novel", type=int, default=10, help="classes never labelled")
    ap.add_argument("--zipf", action="store_true", help="Zipf-like class sizes")
    ap.add_argument(
        "--new",
        default="proto-clusters",
        help="the tagger measured (default: the product's, the proto head with the clusters)",
    )
    ap.add_argument("--old", default="knn", help="the head compared with ('' for none)")
    ap.add_argument("--diagnose", action="store_true", help="per split: where the misses come from")
    ap.add_argument(
        "--share",
        type=float,
        default=None,
        help="proto-transductive: the share of simulated novel images tagged (default 0.12)",
    )
    args = ap.parse_args()
    if args.long_tailed:
        long_tailed(args)
        return

    classes = sorted(p.name for p in (check_data() / "images").iterdir() if p.is_dir())
    known, novel, labelled = split(classes, args.seed, args.known, args.per_class)
    print(
        f"protocol: {len(known)} known classes x {args.per_class} labels, {len(novel)} never "
        f"labelled + distractors; seed {args.seed}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-tagging-") as tmp:
        work = Path(tmp)
        library = copy_library(work, args.from_library)
        labels_csv = work / "labels.csv"
        with open(labels_csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label"])
            writer.writerows(labelled)
        print(cli("labels", "import", str(labels_csv), library=library).stdout.strip())
        info_seconds = cli("info", "--json", library=library).seconds
        for head in args.heads.split(","):
            tagged = cli("tag", "--json", "--head", head, library=library)
            results = json.loads(tagged.stdout)
            report(head, results, known, novel, tagged.seconds, info_seconds)
            ref = reference_knn(library, labelled, _novel_unknown(results, novel))
            print(
                f"  reference 1-NN + cosine threshold at the same novel-unknown rate: "
                f"known accuracy {ref:.3f}"
            )


def _novel_unknown(results, novel) -> float:
    novel_rows = [r for r in results if _class_of(r["path"]) in novel]
    return float(np.mean([r["label"] is None for r in novel_rows]))


def report(head, results, known, novel, seconds, info_seconds) -> None:
    by_kind: dict[str, list] = {"known": [], "novel": [], "distractor": []}
    for r in results:
        c = _class_of(r["path"])
        kind = "known" if c in known else "novel" if c in novel else "distractor"
        by_kind[kind].append((c, r))
    known_acc = np.mean([r["label"] == c for c, r in by_kind["known"]])
    novel_unknown = np.mean([r["label"] is None for _, r in by_kind["novel"]])
    both = by_kind["novel"] + by_kind["distractor"]
    with_distractors = np.mean([r["label"] is None for _, r in both])
    answered_right = [
        (r["confidence"], (r["label"] == c) if kind == "known" else r["label"] is None)
        for kind, rows in by_kind.items()
        for c, r in rows
    ]
    conf = np.array([a for a, _ in answered_right])
    right = np.array([b for _, b in answered_right])
    print(
        f"{head}: known accuracy {known_acc:.3f} ({len(by_kind['known'])} images), "
        f"novel unknown {novel_unknown:.3f} ({len(by_kind['novel'])} images), "
        f"with distractors {with_distractors:.3f} ({len(both)} images)\n"
        f"  calibration error of the answers' confidence "
        f"{expected_calibration_error(conf, right):.3f}; tag took {seconds:.1f}s = "
        f"{seconds / info_seconds:.1f}x `lookalike info` ({info_seconds:.2f}s)"
    )


if __name__ == "__main__":
    main()
