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

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from lookalike.classifier.tagging.calibration import (
    SimulationSettings,
    expected_calibration_error,
    reliability,
)
from lookalike.classifier.tagging.coverage import Coverage, library_coverage
from lookalike.classifier.tagging.head_pool import default_workers, run_groups, split
from lookalike.classifier.tagging.heads import INDUCTIVE_HEADS, project
from lookalike.classifier.tagging.knn_head import Graph
from lookalike.classifier.tagging.tagger import (
    DEFAULT_HEAD,
    HEADS,
    NotEnoughLabels,
    Tagger,
    make_head,
    prepare,
    single_threaded_blas,
)
from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.store.library import Library

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
DEFAULT_CURVE = (1, 2, 5, 10, 20)
CONFUSED_PAIRS = 8
EXAMPLES_PER_PAIR = 3
# Calibration rounds inside each open-set round: fewer than when tagging, to keep
# evaluate to minutes with the heads that refit a scikit-learn model every round.
EVAL_SIMULATION = SimulationSettings(min_rounds=4, max_rounds=6)
# CPU seconds of each head's validation on the 2,013 dev images (scripts/bench_evaluate.py,
# the mean of 5 runs): how the heads are split between the processes. The first group
# (here: svm, linear, proto, 12.9 s) stays in this process, the other (knn, mlp, 12.4 s)
# goes to the worker, which first spends about a second importing.
HEAD_COST = {"proto": 0.85, "knn": 4.5, "linear": 4.1, "svm": 8.0, "mlp": 7.9}


# -- results -------------------------------------------------------------------------------
class ClassNote(NamedTuple):
    """A class with too few labels for every fold."""

    cls: int  # index into the evaluation's classes
    labels: int
    note: str


class ClassFigures(NamedTuple):
    cls: int  # index into the evaluation's classes
    precision: float
    recall: float
    f1: float
    support: int  # held-out labels of the class

    def to_json(self) -> dict[str, Any]:
        doc = self._asdict()
        return {"class": doc.pop("cls"), **doc}


@dataclass(frozen=True)
class ConfusedPair:
    true: int  # class index
    predicted: int  # class index
    count: int
    examples: list[int]  # row numbers of the labelled rows, image ids from evaluate_library


class Metrics(NamedTuple):
    """Classification figures of predictions against the truth."""

    accuracy: float
    macro_f1: float
    per_class: list[ClassFigures]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    confused_pairs: list[ConfusedPair]  # most confused first


class CurvePoint(NamedTuple):
    labels_per_class: int
    accuracy: float
    classes_with_fewer: int  # classes that have fewer labels than this to train on


@dataclass(frozen=True)
class OpenSetFigures:
    """Rounds that hide whole classes too; ``skipped`` says why there were none."""

    skipped: str | None = None
    hidden_classes_per_round: int | None = None
    auroc: float | None = None  # of the confidence, known- against hidden-class images
    known_accuracy: float | None = None  # known-class images tagged right
    novel_unknown: float | None = None  # hidden-class images left unknown
    calibration_error: float | None = None
    reliability: list[dict[str, Any]] = field(default_factory=list)  # calibration.reliability
    known_images: int | None = None
    novel_images: int | None = None

    def to_json(self, with_reliability: bool = True) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        doc = asdict(self)
        del doc["skipped"]
        if not with_reliability:
            del doc["reliability"]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OpenSetFigures:
        return cls(**{f.name: doc[f.name] for f in fields(cls) if f.name in doc})


@dataclass(frozen=True)
class HeadFigures:
    """One head's cross-validation, learning curve and open-set rounds."""

    tested: int  # labelled images held out once
    accuracy: float
    macro_f1: float
    per_class: list[ClassFigures]
    confusion: list[list[int]]
    confused_pairs: list[ConfusedPair]
    learning_curve: list[CurvePoint]
    open_set: OpenSetFigures
    seconds: float  # wall time of the head's whole validation
    cpu_seconds: float = 0.0  # its CPU time (the BLAS is single-threaded)

    def to_json(self) -> dict[str, Any]:
        return {
            "tested": self.tested,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": [c.to_json() for c in self.per_class],
            "confusion": self.confusion,
            "confused_pairs": [asdict(p) for p in self.confused_pairs],
            "learning_curve": [p._asdict() for p in self.learning_curve],
            "open_set": self.open_set.to_json(),
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }


@dataclass(frozen=True)
class StoredHead:
    accuracy: float
    macro_f1: float
    open_set: OpenSetFigures  # without the reliability bins


@dataclass(frozen=True)
class StoredEvaluation:
    """The summary an evaluation keeps in the catalog's meta table (under "evaluation")."""

    at: float
    folds: int
    heads: dict[str, StoredHead]
    best_head: str

    def to_json(self) -> dict[str, Any]:
        heads = {
            name: {"accuracy": h.accuracy, "macro_f1": h.macro_f1}
            | {"open_set": h.open_set.to_json(with_reliability=False)}
            for name, h in self.heads.items()
        }
        return {"at": self.at, "folds": self.folds, "heads": heads, "best_head": self.best_head}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StoredEvaluation:
        heads = {
            name: StoredHead(h["accuracy"], h["macro_f1"], OpenSetFigures.from_json(h["open_set"]))
            for name, h in doc["heads"].items()
        }
        return cls(doc["at"], doc["folds"], heads, doc["best_head"])


@dataclass(frozen=True)
class Evaluation:
    """Every head validated on the human labels (module docstring)."""

    classes: list[str]
    labels: int  # labelled images
    images: int  # images in all
    folds: int
    notes: list[ClassNote]
    heads: dict[str, HeadFigures]
    best_head: str  # the most accurate
    # From evaluate_library: the library, the paths of the example images, and the
    # labels' coverage on the unlabelled library (lookalike.classifier.tagging.coverage).
    library: str | None = None
    paths: dict[int, str] = field(default_factory=dict)
    coverage: Coverage | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "classes": self.classes,
            "labels": self.labels,
            "images": self.images,
            "folds": self.folds,
            "notes": [
                {"class": self.classes[n.cls], "labels": n.labels, "note": n.note}
                for n in self.notes
            ],
            "heads": {name: h.to_json() for name, h in self.heads.items()},
            "best_head": self.best_head,
        }
        if self.library is not None:
            doc["paths"] = {str(i): p for i, p in self.paths.items()}
            doc["library"] = self.library
        if self.coverage is not None:
            doc["coverage"] = self.coverage.to_json()
        return doc

    def summary(self, at: float) -> StoredEvaluation:
        heads = {
            name: StoredHead(h.accuracy, h.macro_f1, replace(h.open_set, reliability=[]))
            for name, h in self.heads.items()
        }
        return StoredEvaluation(at, self.folds, heads, self.best_head)


# -- cross-validation --------------------------------------------------------------------
def assign_folds(
    y: np.ndarray, folds: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[ClassNote]]:
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
            notes.append(ClassNote(int(c), 1, "training only (one label)"))
            continue
        if len(members) < folds:
            note = f"tested in {len(members)} of {folds} folds (fewer labels than folds)"
            notes.append(ClassNote(int(c), int(len(members)), note))
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
    progress: Callable[[str, str], None] | None = None,
    workers: int | None = None,
) -> Evaluation:
    """Validate ``heads`` on the labelled rows ``seeds`` of ``vectors`` (module docstring).

    ``progress(head, step)`` is called as each head starts (step ``"starting"``),
    before each fold of its cross-validation, learning curve and open-set rounds
    (``"cross-validation fold 2 of 5 (head 3 of 5)"``...) and when it is done (``"done"``).
    The heads run in ``workers`` processes at once (default:
    head_pool.default_workers()), so several heads report progress at the same time,
    from more than one thread.

    Returns:
        The evaluation; example images (``confused_pairs``) are row numbers of the
        labelled rows.
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
    x = prepare(vectors)
    job = partial(
        evaluate_heads,
        seeds=seeds,
        y=y,
        fold=fold,
        folds=folds,
        n_classes=len(names),
        curve=tuple(curve),
        seed=seed,
    )

    def step(name: str, text: str) -> None:
        if progress:
            number = heads.index(name) + 1
            plain = text in ("starting", "done")
            progress(name, text if plain else f"{text} (head {number} of {len(heads)})")

    groups = split(heads, lambda h: HEAD_COST.get(h, 1.0), workers or default_workers())
    by_head = run_groups(job, x, groups, step)
    results = {name: by_head[name] for name in heads}
    best = max(results, key=lambda h: results[h].accuracy)
    return Evaluation(
        classes=[str(n) for n in names],
        labels=int(len(seeds)),
        images=int(len(vectors)),
        folds=folds,
        notes=notes,
        heads=results,
        best_head=best,
    )


def evaluate_heads(
    x: np.ndarray,
    heads: Sequence[str],
    report: Callable[[str, str], None],
    *,
    seeds: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    folds: int,
    n_classes: int,
    curve: Sequence[int],
    seed: int,
) -> dict[str, HeadFigures]:
    """Cross-validation, learning curve and open-set rounds of ``heads`` on the prepared
    vectors ``x`` (a head_pool task: run here or in a worker process). What several
    heads share is computed once: the kNN graph, the inductive heads' PCA projection."""
    graph = Graph.build(x) if "knn" in heads else None
    results: dict[str, HeadFigures] = {}
    with single_threaded_blas():
        projected = project(x, seed) if set(heads) & set(INDUCTIVE_HEADS) else None
        for name in heads:
            started = time.perf_counter()
            cpu = time.thread_time()

            def step(text: str, name: str = name) -> None:
                report(name, text)

            step("starting")
            head = make_head(name, x, graph=graph, seed=seed, projected=projected)
            tested, metrics = _cross_validate(head, seeds, y, fold, folds, n_classes, step)
            learning_curve = _learning_curve(head, seeds, y, fold, folds, curve, seed, step)
            open_set = _open_set(head, seeds, y, fold, folds, seed, step)
            results[name] = HeadFigures(
                tested,
                *metrics,
                learning_curve=learning_curve,
                open_set=open_set,
                seconds=round(time.perf_counter() - started, 2),
                cpu_seconds=round(time.thread_time() - cpu, 2),
            )
            step("done")
    return results


def _cross_validate(head, seeds, y, fold, folds, n_classes, step) -> tuple[int, Metrics]:
    pred = np.full(len(y), -1)
    for f in range(folds):
        step(f"cross-validation fold {f + 1} of {folds}")
        test = fold == f
        if not test.any():
            continue
        head.fit(seeds[~test], y[~test])
        pred[test] = head.score(seeds[test]).pred
    tested = pred >= 0
    metrics = classification_metrics(y[tested], pred[tested], n_classes, np.flatnonzero(tested))
    return int(tested.sum()), metrics


def classification_metrics(
    truth: np.ndarray, pred: np.ndarray, n_classes: int, rows: np.ndarray | None = None
) -> Metrics:
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
    per_class = [
        ClassFigures(c, float(precision[c]), float(recall[c]), float(f1[c]), int(support[c]))
        for c in range(n_classes)
    ]
    return Metrics(
        accuracy=float(tp.sum() / max(len(truth), 1)),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class,
        confusion=confusion.tolist(),
        confused_pairs=_confused_pairs(confusion, truth, pred, rows),
    )


def _confused_pairs(confusion, truth, pred, rows) -> list[ConfusedPair]:
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
        pairs.append(ConfusedPair(int(a), int(b), int(off[a, b]), examples))
    return pairs


def _learning_curve(head, seeds, y, fold, folds, curve, seed, step) -> list[CurvePoint]:
    rng = np.random.default_rng(seed + 1)
    train_sizes = [int((y[fold != f] == c).sum()) for f in range(folds) for c in np.unique(y)]
    out = []
    for n in curve:
        if n > max(train_sizes):
            break
        right = total = 0
        for f in range(folds):
            step(f"learning curve, {n} per class, fold {f + 1} of {folds}")
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
            out.append(CurvePoint(n, right / total, capped))
    return out


def _open_set(head, seeds, y, fold, folds, seed, step) -> OpenSetFigures:
    """Hide whole classes too; AUROC of the confidence, and the tag/unknown decisions."""
    classes = np.unique(y)
    if len(classes) < 3:
        return OpenSetFigures(skipped="needs labels of at least three classes")
    rng = np.random.default_rng(seed + 2)
    per_round = max(1, int(round(0.2 * len(classes))))
    order = rng.permutation(classes)
    conf_known, conf_novel, right_known, tagged_novel, p_known_novel = [], [], [], [], []
    answer_conf, answer_right = [], []
    for f in range(folds):
        step(f"open-set round {f + 1} of {folds}")
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
        return OpenSetFigures(skipped="no round had both known and hidden classes")
    ck, cn = np.concatenate(conf_known), np.concatenate(conf_novel)
    ac, ar = np.concatenate(answer_conf), np.concatenate(answer_right)
    return OpenSetFigures(
        hidden_classes_per_round=per_round,
        auroc=auroc(ck, cn),
        known_accuracy=float(np.concatenate(right_known).mean()),
        novel_unknown=float(1 - np.concatenate(tagged_novel).mean()),
        calibration_error=expected_calibration_error(ac, ar),
        reliability=reliability(ac, ar),
        known_images=int(len(ck)),
        novel_images=int(len(cn)),
    )


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
    library: Library,
    heads: Sequence[str] = HEADS,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    progress: Callable[[str, str], None] | None = None,
    workers: int | None = None,
) -> Evaluation:
    """Validate the heads on a library's human labels (any open library; nothing written).

    Returns:
        ``evaluate_vectors``'s evaluation with image ids in place of row numbers for
        the confused pairs' examples, their paths, and the library. Keep its summary
        with :func:`store_summary`.
    """
    ids, vectors = library.catalog.vectors()
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], lab) for i, lab in library.catalog.labels().items() if i in row_of]
    if len({lab for _, lab in pairs}) < 2:
        raise NotEnoughLabels(len(ids), len({lab for _, lab in pairs}))
    seeds = np.array([r for r, _ in pairs], dtype=np.int64)
    result = evaluate_vectors(
        vectors,
        seeds,
        [lab for _, lab in pairs],
        heads,
        folds,
        seed=seed,
        progress=progress,
        workers=workers,
    )
    by_id = {
        name: replace(
            h,
            confused_pairs=[
                replace(p, examples=[int(ids[seeds[r]]) for r in p.examples])
                for p in h.confused_pairs
            ],
        )
        for name, h in result.heads.items()
    }
    example_ids = sorted({i for h in by_id.values() for p in h.confused_pairs for i in p.examples})
    paths = library.catalog.paths(example_ids)
    return replace(
        result,
        heads=by_id,
        paths=paths,
        library=str(library.root),
        coverage=library_coverage(library),
    )


def store_summary(library: Library, evaluation: Evaluation) -> StoredEvaluation:
    """Keep the evaluation's headline figures in the catalog (a writable library), where
    tag runs and the web app find them; returns what was stored."""
    summary = evaluation.summary(at=time.time())
    with library.catalog.transaction() as conn:
        library.catalog.set_meta(META_KEY, json.dumps(summary.to_json()), conn)
    return summary


def stored_summary(library: Library) -> StoredEvaluation | None:
    """The summary the last evaluation stored, or None."""
    text = library.catalog.get_meta(META_KEY)
    return StoredEvaluation.from_json(json.loads(text)) if text else None


# -- the head tagging uses -----------------------------------------------------

HEAD_KEY = "tag_head"


def tagging_head(library: Library) -> str:
    """The head tagging uses when none is named: the one chosen (choose_head), or proto."""
    return library.catalog.get_meta(HEAD_KEY) or DEFAULT_HEAD


def choose_head(library: Library, head: str) -> None:
    """Keep ``head`` as the one tagging uses (a writable library): after an evaluation a
    person picks it, and `lookalike tag` and the web's tag runs use it from then on."""
    if head not in HEADS:
        raise LookalikeError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    with library.catalog.transaction() as conn:
        library.catalog.set_meta(HEAD_KEY, head, conn)
