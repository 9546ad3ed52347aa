"""Benchmark: the label-next queue against random choice, with a simulated annotator.

Protocol (issue 15): the long-tailed dev data (``images/`` + ``extra/``, 51 classes
at their natural sizes; its distractors left out), as vectors of the bench cache's
long-tailed library (indexed once by ``bench_support.data.long_tailed_library``;
read here, never written). A simulated annotator labels 20 images per round with
their true class (the folder name, ``class_of``), including classes nobody
labelled before: either the 20 the queue (``lookalike.classifier.label_queue.rank``)
puts first, or 20 chosen at random. After each round the tagger
(``lookalike.classifier.tagging.tagger.tag_vectors``, its public API) tags the rest;
the queue follows those tags in the next round.

Printed, for both: the known-class accuracy over the unlabelled images (images of
a class with at least one label, tagged with their class; an "unknown" counts as a
miss) after 100, 200, 400 and 800 labels, and the labels from which it stays at or
above 0.90 to the end of the run, and how many classes have a label; then the ratio
queue / random of those labels (goal: at most 0.5) and the queue's labels per class
at 0.90 (goal: under 5).

Usage:
    python scripts/bench_active.py [--seed 0] [--max-labels 800] [--json]
"""

from __future__ import annotations

import time

import numpy as np

from bench_support.data import bench_cache, class_of, library_vectors
from bench_support.figures import emit, parser
from lookalike.classifier import label_queue
from lookalike.classifier.tagging.tagger import NotEnoughLabels, tag_vectors

ROUND = 20
CHECKPOINTS = (100, 200, 400, 800)
GOAL = 0.90


def load() -> tuple[np.ndarray, np.ndarray]:
    root = bench_cache() / "long-tailed-library"
    if not (root / "catalog.sqlite").exists():
        raise SystemExit(f"no long-tailed library at {root}: run long_tailed_library() once")
    paths, vectors = library_vectors(root)
    classes = np.array([class_of(p) for p in paths])
    keep = classes != "distractors"
    return vectors[keep], classes[keep]


def tag(vectors: np.ndarray, classes: np.ndarray, seeds: np.ndarray):
    """(accuracy over the unlabelled known-class images, per-row tag confidence)."""
    try:
        rows, guesses, prediction, _ = tag_vectors(vectors, seeds, classes[seeds])
    except NotEnoughLabels:
        return 0.0, None
    tagged, _ = prediction.decide()
    known = np.isin(classes[rows], np.unique(classes[seeds]))
    right = tagged & (np.asarray(guesses) == classes[rows])
    confidence = np.zeros(len(vectors), dtype=np.float32)
    confidence[rows] = np.where(tagged, prediction.confidence, 0.0)
    return float(right[known].mean()) if known.any() else 0.0, confidence


def simulate(vectors, classes, strategy: str, max_labels: int, seed: int) -> list[tuple]:
    """[(labels, accuracy, classes with a label)] after each round."""
    rng = np.random.default_rng(seed)
    x = label_queue.normalised(vectors)
    graph = label_queue.neighbours(x)
    labelled = np.zeros(0, dtype=np.int64)
    confidence = None
    curve = []
    while len(labelled) < max_labels:
        if strategy == "queue":
            picks = label_queue.rank(x, labelled, confidence, ROUND, graph=graph)
        else:
            free = np.setdiff1d(np.arange(len(x)), labelled)
            picks = rng.choice(free, ROUND, replace=False).tolist()
        labelled = np.concatenate([labelled, np.asarray(picks, dtype=np.int64)])
        accuracy, confidence = tag(vectors, classes, labelled)
        curve.append((len(labelled), accuracy, len(np.unique(classes[labelled]))))
    return curve


def needed(curve: list[tuple]) -> int | None:
    """Labels from which the accuracy stays at or above the goal to the end of the run
    (the first crossing, with a few classes known, is easy and noisy)."""
    out = None
    for n, acc, _ in curve:
        if acc < GOAL:
            out = None
        elif out is None:
            out = n
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-labels", type=int, default=800)
    args = p.parse_args()
    vectors, classes = load()
    n_classes = len(np.unique(classes))
    print(f"{len(vectors)} images of {n_classes} classes; rounds of {ROUND} labels")
    figures = {}
    for strategy in ("queue", "random"):
        start = time.perf_counter()
        curve = simulate(vectors, classes, strategy, args.max_labels, args.seed)
        at = {n: acc for n, acc, _ in curve}
        known = {n: k for n, _, k in curve}
        shown = "  ".join(f"{n}: {at[n]:.3f} ({known[n]} classes)" for n in CHECKPOINTS if n in at)
        need = needed(curve)
        print(
            f"{strategy:>6}: known-class accuracy after {shown}; "
            f"at or above {GOAL} from {need or f'more than {args.max_labels}'} labels "
            f"({time.perf_counter() - start:.0f} s)"
        )
        figures[strategy] = {
            "accuracy": {n: at[n] for n in CHECKPOINTS if n in at},
            "to_goal": need,
        }
    q, r = figures["queue"]["to_goal"], figures["random"]["to_goal"]
    if q is not None:
        ratio = f"{q / r:.2f}" if r else f"< {q / args.max_labels:.2f}"
        print(
            f"labels to {GOAL}: queue / random = {ratio} (goal <= 0.5); "
            f"queue: {q / n_classes:.1f} labels per class (goal < 5)"
        )
    emit(args, figures)


if __name__ == "__main__":
    main()
