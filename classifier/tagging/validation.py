"""Validation on the user's own labels: which head serves this library best?

For every head:

- stratified K-fold cross-validation over the human labels: accuracy, macro-F1,
  per-class precision/recall, the confusion matrix and the most confused pairs
  (with example images);
- a learning curve: accuracy with 1, 2, 5, 10, 20 labels per class (drawn from
  the training folds, tested on the same held-out folds);
- open-set figures: in each round some whole classes are hidden as well (they
  play the classes nobody has named yet); the tagger is fitted with its
  calibration on the rest, and the confidence's AUROC for telling known-class
  images from hidden-class ones is measured, with the share of known-class
  images tagged right and of hidden-class images left unknown.

Classes with fewer labels than folds are tested in as many folds as they have
labels; classes with one label are used for training only (and say so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from lookalike.classifier.tagging.calibration import (
    SimulationSettings,
    expected_calibration_error,
    reliability,
)
from lookalike.classifier.tagging.tagger import (
    HEADS,
    Graph,
    NotEnoughLabels,
    Tagger,
    make_head,
    prepare,
    single_threaded_blas,
)
from lookalike.indexer.errors import LookalikeError

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
DEFAULT_CURVE = (1, 2, 5, 10, 20)
CONFUSED_PAIRS = 8
EXAMPLES_PER_PAIR = 3
# Calibration rounds inside each open-set round: fewer than when tagging, to keep
# evaluate to minutes with the heads that refit a scikit-learn model every round.
EVAL_SIMULATION = SimulationSettings(min_rounds=4, max_rounds=6)


def assign_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """A fold number for each labelled image (-1: training only), and notes on small classes.

    Each class's images are shuffled and dealt round-robin, so every fold holds
    about the same share of every class.
    """
    fold = np.full(len(y), -1)
    notes = []
    start = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) < 2:
            notes.append({"class": int(c), "labels": 1, "note": "training only (one label)"})
            continue
        if len(members) < folds:
            notes.append(
                {
                    "class": int(c),
                    "labels": int(len(members)),
                    "note": f"tested in {len(members)} of {folds} folds (fewer labels than folds)",
                }
            )
        # Rotate the starting fold so small classes do not all land in fold 0.
        fold[members] = (np.arange(len(members)) + start) % folds
        start += len(members)
    return fold, notes


def evaluate_vectors(
    vectors: np.ndarray,
    seeds: np.ndarray,
    labels: Sequence[str],
    heads: Sequence[str] = HEADS,
    folds: int = DEFAULT_FOLDS,
    curve: Sequence[int] = DEFAULT_CURVE,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Validate ``heads`` on the labelled rows ``seeds`` of ``vectors`` (module docstring).

    Returns:
        A JSON-able dict: {"classes": [...], "folds": K, "notes": [...],
        "heads": {name: {accuracy, macro_f1, per_class, confusion, confused_pairs,
        learning_curve, open_set}}}. Example image references are row numbers.
    """
    names, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    if len(names) < 2:
        raise NotEnoughLabels(len(vectors), len(names))
    if folds < 2:
        raise ValueError("need at least 2 folds")
    rng = np.random.default_rng(seed)
    fold, notes = assign_folds(y, folds, rng)
    if (fold < 0).all():
        raise LookalikeError(
            "every class has a single label, so there is nothing to hold out; "
            "label at least two images of some classes"
        )
    for n in notes:
        n["class"] = str(names[n["class"]])
    x = prepare(vectors)
    graph = Graph.build(x) if "knn" in heads else None
    results: dict[str, dict] = {}
    out = {
        "classes": [str(n) for n in names],
        "labels": int(len(seeds)),
        "images": int(len(vectors)),
        "folds": folds,
        "notes": notes,
        "heads": results,
    }
    for name in heads:
        started = time.perf_counter()
        if progress:
            progress(name)
        head = make_head(name, x, graph=graph, seed=seed)
        with single_threaded_blas():
            result = _cross_validate(head, seeds, y, fold, folds, len(names))
            result["learning_curve"] = _learning_curve(head, seeds, y, fold, folds, curve, seed)
            result["open_set"] = _open_set(head, seeds, y, fold, folds, seed)
        result["seconds"] = round(time.perf_counter() - started, 2)
        results[name] = result
    best = max(results, key=lambda h: results[h]["accuracy"])
    out["best_head"] = best
    return out


def _cross_validate(head, seeds, y, fold, folds, n_classes) -> dict:
    pred = np.full(len(y), -1)
    for f in range(folds):
        test = fold == f
        if not test.any():
            continue
        head.fit(seeds[~test], y[~test])
        pred[test] = head.score(seeds[test]).pred
    tested = pred >= 0
    return {
        "tested": int(tested.sum()),
        **classification_metrics(y[tested], pred[tested], n_classes, np.flatnonzero(tested)),
    }


def classification_metrics(truth, pred, n_classes: int, rows: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion, confused pairs."""
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (truth, pred), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(tp),
        where=precision + recall > 0,
    )
    present = support > 0
    pairs = []
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    for flat in np.argsort(-off, axis=None)[:CONFUSED_PAIRS]:
        a, b = np.unravel_index(flat, off.shape)
        if off[a, b] == 0:
            break
        examples = []
        if rows is not None:
            examples = [int(r) for r in rows[(truth == a) & (pred == b)][:EXAMPLES_PER_PAIR]]
        pairs.append(
            {"true": int(a), "predicted": int(b), "count": int(off[a, b]), "examples": examples}
        )
    return {
        "accuracy": float(tp.sum() / max(len(truth), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": [
            {
                "class": int(c),
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(n_classes)
        ],
        "confusion": confusion.tolist(),
        "confused_pairs": pairs,
    }


def _learning_curve(head, seeds, y, fold, folds, curve, seed) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    train_sizes = [int((y[fold != f] == c).sum()) for f in range(folds) for c in np.unique(y)]
    out = []
    for n in curve:
        if n > max(train_sizes):
            break
        right = total = 0
        for f in range(folds):
            test = fold == f
            if not test.any():
                continue
            picked: list[int] = []
            for c in np.unique(y):
                members = np.flatnonzero(~test & (y == c))
                picked.extend(rng.permutation(members)[:n])
            train = np.array(sorted(picked))
            if len(np.unique(y[train])) < 2:
                continue
            head.fit(seeds[train], y[train])
            pred = head.score(seeds[test]).pred
            right += int((pred == y[test]).sum())
            total += int(test.sum())
        capped = sum(1 for c in np.unique(y) if (y == c).sum() - 1 < n)
        if total:
            out.append(
                {"labels_per_class": n, "accuracy": right / total, "classes_with_fewer": capped}
            )
    return out


def _open_set(head, seeds, y, fold, folds, seed) -> dict:
    """Hide whole classes too; AUROC of the confidence, and the tag/unknown decisions."""
    classes = np.unique(y)
    if len(classes) < 3:
        return {"skipped": "needs labels of at least three classes"}
    rng = np.random.default_rng(seed + 2)
    per_round = max(1, int(round(0.2 * len(classes))))
    order = rng.permutation(classes)
    conf_known, conf_novel, right_known, tagged_novel, p_known_novel = [], [], [], [], []
    answer_conf, answer_right = [], []
    for f in range(folds):
        hidden = order[(np.arange(per_round) + f * per_round) % len(order)]
        novel = np.isin(y, hidden)
        test = (fold == f) & ~novel
        train = (fold != f) & ~novel
        if not test.any() or len(np.unique(y[train])) < 2:
            continue
        sim = SimulationSettings(
            min_rounds=EVAL_SIMULATION.min_rounds,
            max_rounds=EVAL_SIMULATION.max_rounds,
            seed=seed + f,
        )
        tagger = Tagger(head, sim).fit(seeds[train], y[train])
        rows = np.concatenate([seeds[test], seeds[novel]])
        prediction = tagger.predict(rows)
        tagged, conf = prediction.decide(0.0)
        k = int(test.sum())
        right = tagged[:k] & (prediction.pred[:k] == y[test])
        conf_known.append(prediction.confidence[:k])
        conf_novel.append(prediction.confidence[k:])
        right_known.append(right)
        tagged_novel.append(tagged[k:])
        answer_conf.append(conf)
        answer_right.append(np.concatenate([right, ~tagged[k:]]))
        p_known_novel.append(prediction.p_known[k:])
    if not conf_known:
        return {"skipped": "no round had both known and hidden classes"}
    ck, cn = np.concatenate(conf_known), np.concatenate(conf_novel)
    ac, ar = np.concatenate(answer_conf), np.concatenate(answer_right)
    return {
        "hidden_classes_per_round": per_round,
        "auroc": auroc(ck, cn),
        "known_accuracy": float(np.concatenate(right_known).mean()),
        "novel_unknown": float(1 - np.concatenate(tagged_novel).mean()),
        "calibration_error": expected_calibration_error(ac, ar),
        "reliability": reliability(ac, ar),
        "known_images": int(len(ck)),
        "novel_images": int(len(cn)),
    }


def auroc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0
    ranks[order] = np.repeat(avg, counts) + 1
    n_pos = len(positive)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * len(negative)))


# -- a library -----------------------------------------------------------------

META_KEY = "evaluation"


def evaluate_library(
    library=None,
    heads: Sequence[str] = HEADS,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Validate the heads on a library's human labels; the summary goes to the meta table.

    Args:
        library: an open ``lookalike.indexer.store.library.Library`` or its directory.

    Returns:
        ``evaluate_vectors``'s dict with image ids (``examples``) and paths
        (``paths``: id -> path) in place of row numbers, plus "library".
    """
    import json

    from lookalike.classifier.labels import human_labels
    from lookalike.indexer.store.library import Library

    own = not isinstance(library, Library)
    lib = Library.open(library, readonly=False) if own else library
    try:
        ids, vectors = lib.catalog.vectors()
        labelled, labels = human_labels(lib.catalog)
        row_of = {int(i): r for r, i in enumerate(ids)}
        pairs = [(row_of[i], lab) for i, lab in zip(labelled, labels, strict=True) if i in row_of]
        if len({lab for _, lab in pairs}) < 2:
            raise NotEnoughLabels(len(ids), len({lab for _, lab in pairs}))
        seeds = np.array([r for r, _ in pairs], dtype=np.int64)
        result = evaluate_vectors(
            vectors, seeds, [lab for _, lab in pairs], heads, folds, seed=seed, progress=progress
        )
        example_ids = set()
        for h in result["heads"].values():
            for pair in h["confused_pairs"]:
                pair["examples"] = [int(ids[seeds[r]]) for r in pair["examples"]]
                example_ids.update(pair["examples"])
        result["paths"] = {str(i): p for i, p in lib.catalog.paths(sorted(example_ids)).items()}
        result["library"] = str(lib.root)
        summary = {
            "at": time.time(),
            "folds": folds,
            "heads": {
                h: {k: r[k] for k in ("accuracy", "macro_f1")}
                | {"open_set": {k: v for k, v in r["open_set"].items() if k != "reliability"}}
                for h, r in result["heads"].items()
            },
            "best_head": result["best_head"],
        }
        if not lib.catalog.readonly:
            with lib.catalog.transaction() as conn:
                lib.catalog.set_meta(META_KEY, json.dumps(summary), conn)
        return result
    finally:
        if own:
            lib.close()
