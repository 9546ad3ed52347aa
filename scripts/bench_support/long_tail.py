"""Long-tailed class splits of a library's vectors: which images take part, which are
labelled, which classes are never labelled (the protocol of issue 17).

A split draws, from one seed: the classes held out as never labelled (the distractors
are never labelled either), the class sizes (the natural ones, or Zipf-like: the class
of rank r keeps 1000 * r^-1.1 images, at least 5, at most what it has), and N labels of
every other class (at most half of its images, at least one).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

DISTRACTORS = "distractors"
SIZE_BUCKETS = ((1, 20), (21, 100), (101, 400), (401, 100_000))  # images of a class


class Split(NamedTuple):
    rows: np.ndarray  # library rows taking part
    seeds: np.ndarray  # positions in ``rows`` of the labelled images
    novel: frozenset[str]  # classes never labelled
    sizes: dict[str, int]  # images of each class in the split

    def truth(self, classes: np.ndarray) -> np.ndarray:
        """The class of each row taking part (``classes``: one per library row)."""
        return classes[self.rows]


def zipf_size(rank: int, available: int) -> int:
    """Images the class of ``rank`` (0 = largest) keeps under Zipf subsampling."""
    return int(np.clip(round(1000 * (rank + 1) ** -1.1), 5, max(5, available)))


def parse_labels(text: str) -> int | tuple[int, int]:
    """``--labels`` item: N labels a class, or LOW-HIGH (each class draws its own count,
    log-uniform: people label a few images of most classes and many of some)."""
    low, _, high = text.partition("-")
    if not high:
        return int(low)
    if not 1 <= int(low) <= int(high):
        raise ValueError(f"--labels {text}: LOW-HIGH with 1 <= LOW <= HIGH")
    return int(low), int(high)


def label_count(labels: int | tuple[int, int], rng: np.random.Generator) -> int:
    """Labels one class gets (see parse_labels)."""
    if isinstance(labels, int):
        return labels
    low, high = labels
    return min(high, int(np.exp(rng.uniform(np.log(low), np.log(high + 1)))))


def make_split(
    classes: np.ndarray,
    seed: int,
    labels: int | tuple[int, int],
    novel: int = 10,
    zipf: bool = False,
    first: bool = False,
) -> Split:
    """One random split of the library rows whose classes are ``classes``; ``first``:
    the labelled images of a class are its first ones in library order (a folder's first
    files, as ``index --labels-per-class`` takes them), not a random choice."""
    rng = np.random.default_rng(seed)
    names = sorted(set(classes.tolist()) - {DISTRACTORS})
    held_out = frozenset(str(c) for c in rng.choice(names, novel, replace=False))
    taking: list[np.ndarray] = []
    seeds: list[np.ndarray] = []
    start = 0
    for rank, name in enumerate(rng.permutation(names)):
        members = np.flatnonzero(classes == name)
        if zipf:
            members = rng.choice(members, min(zipf_size(rank, len(members)), len(members)), False)
        if name not in held_out:
            n = max(1, min(label_count(labels, rng), len(members) // 2))
            if first:
                members = np.sort(members)
                seeds.append(start + np.arange(n))
            else:
                seeds.append(start + rng.choice(len(members), n, replace=False))
        taking.append(members)
        start += len(members)
    taking.append(np.flatnonzero(classes == DISTRACTORS))
    rows = np.concatenate(taking)
    sizes = {str(classes[m[0]]): len(m) for m in taking if len(m)}
    return Split(rows, np.sort(np.concatenate(seeds)), held_out, sizes)


def bucket_of(size: int) -> str:
    for low, high in SIZE_BUCKETS:
        if low <= size <= high:
            return f"{low}-{high}" if high < 100_000 else f">{low - 1}"
    return "?"


class Outcome(NamedTuple):
    """How a tagger did on a split's unlabelled rows."""

    known_accuracy: float  # known-class images tagged right (unknown = miss)
    novel_unknown: float  # never-labelled classes' images left unknown
    distractors_unknown: float  # the distractors left unknown
    calibration: dict[str, float]  # expected calibration error per class-size bucket
    # the tagger's own held-out estimate (known accuracy, novel unknown) from the replay
    # of the clusters (Tagger.replay), when it made one
    estimate: tuple[float | None, float | None] | None = None


def outcome(
    truth: np.ndarray,
    guess: np.ndarray,
    tagged: np.ndarray,
    confidence: np.ndarray,
    split: Split,
    ece,
) -> Outcome:
    """Figures of one tagger's answers (``guess`` where ``tagged``, else unknown) on the
    split's unlabelled rows, whose classes are ``truth``; ``ece`` computes the expected
    calibration error of (confidence, right)."""
    novel = np.isin(truth, list(split.novel))
    distractor = truth == DISTRACTORS
    known = ~novel & ~distractor
    right = np.where(known, tagged & (guess == truth), ~tagged)
    buckets = np.array([bucket_of(split.sizes[t]) for t in truth])
    calibration = {"all": float(ece(confidence, right))}
    for low, _high in SIZE_BUCKETS:
        name = bucket_of(low)
        mask = known & (buckets == name)
        if mask.any():
            calibration[name] = float(ece(confidence[mask], right[mask]))
    calibration["novel"] = float(ece(confidence[novel | distractor], right[novel | distractor]))
    return Outcome(
        float(np.mean(right[known])),
        float(np.mean(right[novel])),
        float(np.mean(right[distractor])) if distractor.any() else float("nan"),
        calibration,
    )


def prototype_reference(x: np.ndarray, split: Split, truth: np.ndarray, novel_rate: float) -> float:
    """Known accuracy of the class prototypes (mean of each class's labelled vectors,
    cosine) with one threshold chosen knowing the novel images: the one that leaves
    ``novel_rate`` of the never-labelled classes' images unknown (optimistic)."""
    seeds = split.seeds
    names, y = np.unique(truth[seeds], return_inverse=True)
    sums = np.zeros((len(names), x.shape[1]))
    np.add.at(sums, y, x[seeds])
    prototypes = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    rest = np.setdiff1d(np.arange(len(truth)), seeds)
    cosines = x[rest] @ prototypes.T
    guess, top = names[cosines.argmax(axis=1)], cosines.max(axis=1)
    t = truth[rest]
    novel = np.isin(t, list(split.novel))
    known = ~novel & (t != DISTRACTORS)
    threshold = np.quantile(top[novel], novel_rate)
    return float(np.mean((top[known] >= threshold) & (guess[known] == t[known])))


def library_classes() -> tuple[np.ndarray, np.ndarray]:
    """(vectors, class per row) of the long-tailed dev library (read only: the cached
    copy as it is when it exists, else indexed once)."""
    from bench_support.data import bench_cache, class_of, library_vectors, long_tailed_library

    root = bench_cache() / "long-tailed-library"
    if not (root / "catalog.sqlite").exists():
        root = long_tailed_library()
    paths, vectors = library_vectors(root)
    return vectors, np.array([class_of(p) for p in paths])


def run_tagger(
    head: str,
    vectors: np.ndarray,
    split: Split,
    truth: np.ndarray,
    diagnose: bool = False,
    oracles: list[dict[str, float]] | None = None,
    share: float | None = None,
):
    """(Outcome, seconds) of ``tag_vectors`` with ``head`` on one split; with
    ``diagnose``, print where its known-class misses and tagged novel images come from,
    and (into ``oracles``) the oracle-threshold figures of :func:`oracle_figures`."""
    from lookalike.classifier.tagging.calibration import expected_calibration_error
    from lookalike.classifier.tagging.tagger import tag_vectors

    started = time.perf_counter()
    estimate = None
    if head in PROTO_VARIANTS:
        rows, guesses, prediction = tag_proto_variant(
            head, vectors[split.rows], split.seeds, truth[split.seeds], share
        )
    else:  # "HEAD-clusters": the head with the library's clusters (tag --with-clusters)
        name, clusters = head.removesuffix(WITH_CLUSTERS), head.endswith(WITH_CLUSTERS)
        rows, guesses, prediction, tagger = tag_vectors(
            vectors[split.rows], split.seeds, truth[split.seeds], head=name, clusters=clusters
        )
        if tagger.replay is not None:
            estimate = (tagger.replay.known_accuracy, tagger.replay.novel_unknown)
    tagged, confidence = prediction.decide()
    seconds = time.perf_counter() - started
    got = outcome(
        truth[rows], np.array(guesses), tagged, confidence, split, expected_calibration_error
    )._replace(estimate=estimate)
    if diagnose:
        print_diagnosis(head, truth[rows], np.array(guesses), tagged, split)
        # The confidence of the best guess (decide's is the answer's, unknown included).
        figures = oracle_figures(
            vectors, split, truth, rows, np.array(guesses), prediction.confidence
        )
        print(
            f"      {head}: known accuracy at {ORACLE_NOVEL_UNKNOWN:.0%} novel unknown, "
            "oracle threshold on: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
        )
        if oracles is not None:
            oracles.append(figures)
    return got, seconds


WITH_CLUSTERS = "-clusters"  # a head's name with this: tagged with the library's clusters

# The neighbours the transductive novelty averages over when the diagnosis measures it
# (ProtoSettings.neighbours is 0, off, by default).
TRANSDUCTIVE = 10


# The prototype head as the default tagger was before the transductive novelty (main
# at b304117; the same as the default "proto" today), and with the transductive
# novelty on, as it was measured as a candidate default (issue 17; off by default: it
# lost on the worst split of the confirmation seeds, proto_head's docstring): each as
# (neighbours, the share of the calibration's simulated novel images tagged), for
# comparisons in the same run.
PROTO_ALONE = "proto-alone"
PROTO_TRANSDUCTIVE = "proto-transductive"
PROTO_VARIANTS = {PROTO_ALONE: (0, 0.15), PROTO_TRANSDUCTIVE: (TRANSDUCTIVE, 0.12)}


def tag_proto_variant(
    head: str,
    vectors: np.ndarray,
    seeds: np.ndarray,
    labels: np.ndarray,
    share: float | None = None,
):
    """(rows, best guesses, prediction) of one of PROTO_VARIANTS, as tag_vectors returns
    them; ``share``: PROTO_TRANSDUCTIVE's share of simulated novel images tagged, when
    not its own."""
    from lookalike.classifier.tagging.calibration import SimulationSettings
    from lookalike.classifier.tagging.proto_head import ProtoHead, ProtoSettings
    from lookalike.classifier.tagging.tagger import Tagger, prepare

    neighbours, own = PROTO_VARIANTS[head]
    share = share if share is not None and head == PROTO_TRANSDUCTIVE else own
    names, y = np.unique(labels, return_inverse=True)
    proto = ProtoHead(prepare(vectors), ProtoSettings(neighbours=neighbours))
    tagger = Tagger(proto, SimulationSettings(seed=0, novel_tagged=share)).fit(seeds, y)
    rows = np.setdiff1d(np.arange(len(vectors)), seeds)
    prediction = tagger.predict(rows)
    return rows, [str(n) for n in names[prediction.pred]], prediction


ORACLE_NOVEL_UNKNOWN = 0.80  # the dev goal's operating point


def oracle_known_accuracy(
    score: np.ndarray, right: np.ndarray, known: np.ndarray, novel: np.ndarray
) -> float:
    """Known-class images tagged right when one threshold on ``score`` (higher = tag),
    chosen knowing the novel images, leaves ORACLE_NOVEL_UNKNOWN of them unknown."""
    threshold = np.quantile(score[novel], ORACLE_NOVEL_UNKNOWN)
    return float(np.mean((right & (score > threshold))[known]))


def oracle_figures(
    vectors: np.ndarray,
    split: Split,
    truth: np.ndarray,
    rows: np.ndarray,
    guess: np.ndarray,
    confidence: np.ndarray,
) -> dict[str, float]:
    """What limits the tagger on a split: the best known accuracy reachable at the goal's
    novel-unknown rate with an oracle threshold on (a) the prototype head's z-score of the
    image alone, (b) the tagger's calibrated confidence (``confidence`` of its best guesses
    ``guess`` for ``rows``), (c) the transductive score, the z-score averaged over the
    image's nearest library images (every neighbour weighing 1, and as the head's default
    weighs them), and the closed-set ceiling. If
    (a)-(c) reach the goal where the tagger does not, its operating point is the limit."""
    from lookalike.classifier.tagging.proto_head import ProtoHead, ProtoSettings
    from lookalike.classifier.tagging.tagger import prepare

    t = truth[rows]
    novel = np.isin(t, list(split.novel))
    known = ~novel & (t != DISTRACTORS)
    names, y = np.unique(truth[split.seeds], return_inverse=True)
    x = prepare(vectors[split.rows])
    out: dict[str, float] = {}
    for name, settings in (
        ("z alone", ProtoSettings(neighbours=0)),
        (
            "transductive z, neighbours weighing 1",
            ProtoSettings(neighbours=TRANSDUCTIVE, weight_from=0.0, weight_to=0.0),
        ),
        ("transductive z, default weights", ProtoSettings(neighbours=TRANSDUCTIVE)),
    ):
        head = ProtoHead(x, settings)
        head.fit(split.seeds, y)
        scores = head.score(rows)
        out[name] = oracle_known_accuracy(scores.novelty, names[scores.pred] == t, known, novel)
        if name == "z alone":
            out["confidence"] = oracle_known_accuracy(confidence, guess == t, known, novel)
    out["closed set"] = float(np.mean((guess == t)[known]))
    return out


def print_diagnosis(
    head: str, truth: np.ndarray, guess: np.ndarray, tagged: np.ndarray, split: Split
) -> None:
    """Known-class images: closed-set right (the best guess, tagged or not), left unknown,
    tagged wrong, and the worst classes; novel-class images tagged, and as what."""
    novel = np.isin(truth, list(split.novel))
    known = ~novel & (truth != DISTRACTORS)
    right = guess == truth
    print(
        f"    {head}: known closed-set right {right[known].mean():.3f}, left unknown "
        f"{(~tagged[known]).mean():.3f}, tagged wrong {(tagged & ~right)[known].mean():.3f}; "
        f"novel tagged {tagged[novel].mean():.3f}"
    )
    worst = sorted(
        {str(c) for c in truth[known]},
        key=lambda c: float(np.mean((tagged & right)[truth == c])),
    )[:4]
    print(
        "      worst known: "
        + ", ".join(
            f"{c} ({split.sizes[c]}) right {np.mean((tagged & right)[truth == c]):.2f} "
            f"unknown {np.mean(~tagged[truth == c]):.2f}"
            for c in worst
        )
    )
    pairs: dict[tuple[str, str], int] = {}
    for t, g in zip(truth[novel & tagged], guess[novel & tagged], strict=True):
        pairs[(str(t), str(g))] = pairs.get((str(t), str(g)), 0) + 1
    top = sorted(pairs.items(), key=lambda kv: -kv[1])[:4]
    print(
        "      novel tagged as: "
        + (", ".join(f"{t} ({split.sizes[t]}) -> {g} {n}" for (t, g), n in top) or "none")
    )


def long_tailed(args) -> None:
    """The long-tailed protocol of bench_tagging.py (its docstring)."""
    from lookalike.classifier.tagging.tagger import prepare

    vectors, classes = library_classes()
    heads = [h for h in (args.new, args.old) if h]
    for labels in [parse_labels(n) for n in args.labels.split(",")]:
        shown = labels if isinstance(labels, int) else "-".join(map(str, labels))
        print(
            f"long-tailed: {len(vectors)} images, {args.novel} classes never labelled + "
            f"distractors, {shown} labels a class"
            f"{' (its first images)' if args.first_labels else ''}, sizes "
            f"{'Zipf' if args.zipf else 'natural'}"
        )
        table: dict[str, list[Outcome]] = {h: [] for h in heads}
        oracles: dict[str, list[dict[str, float]]] = {h: [] for h in heads}
        reference: list[float] = []
        for s in range(args.splits):
            split = make_split(
                classes, args.seed + s, labels, args.novel, args.zipf, args.first_labels
            )
            truth = split.truth(classes)
            line = [f"  split {s:2d} ({len(split.rows)} images)"]
            for head in heads:
                got, seconds = run_tagger(
                    head, vectors, split, truth, args.diagnose, oracles[head], args.share
                )
                table[head].append(got)
                line.append(f"{head} {got.known_accuracy:.3f}/{got.novel_unknown:.3f}")
            new = table[args.new][-1]
            x = prepare(vectors[split.rows])
            reference.append(prototype_reference(x, split, truth, new.novel_unknown))
            line.append(f"prototype ref {reference[-1]:.3f}")
            print("  ".join(line), flush=True)
        for head in heads:
            _summary(head, table[head])
            if oracles[head]:
                print(
                    f"    oracle at {ORACLE_NOVEL_UNKNOWN:.0%} novel unknown (known accuracy): "
                    + "; ".join(
                        f"{k} worst {min(o[k] for o in oracles[head]):.3f} mean "
                        f"{np.mean([o[k] for o in oracles[head]]):.3f}"
                        for k in oracles[head][0]
                    )
                )
        print(
            f"  prototype reference (at the new tagger's novel-unknown rate): worst "
            f"{min(reference):.3f} mean {np.mean(reference):.3f}"
        )


def _summary(head: str, outcomes: list[Outcome]) -> None:
    acc = np.array([o.known_accuracy for o in outcomes])
    nu = np.array([o.novel_unknown for o in outcomes])
    du = np.array([o.distractors_unknown for o in outcomes])
    print(
        f"  {head}: known accuracy worst {acc.min():.3f} mean {acc.mean():.3f}; novel "
        f"unknown worst {nu.min():.3f} mean {nu.mean():.3f}; distractors unknown mean "
        f"{np.nanmean(du):.3f}"
    )
    buckets = sorted({b for o in outcomes for b in o.calibration}, key=_bucket_order)
    ece = "  ".join(
        f"{b} {np.mean([o.calibration[b] for o in outcomes if b in o.calibration]):.3f}"
        for b in buckets
    )
    print(f"    calibration error (mean over splits) per class size: {ece}")
    estimates = [(o, o.estimate) for o in outcomes if o.estimate and None not in o.estimate]
    if estimates:
        print(
            f"    its own estimate from the clusters' replay ({len(estimates)} splits), mean: "
            f"known accuracy {np.mean([e[0] for _, e in estimates]):.3f} (measured "
            f"{np.mean([o.known_accuracy for o, _ in estimates]):.3f}), novel unknown "
            f"{np.mean([e[1] for _, e in estimates]):.3f} (measured "
            f"{np.mean([o.novel_unknown for o, _ in estimates]):.3f})"
        )


def _bucket_order(name: str) -> tuple[int, str]:
    order = ["all"] + [bucket_of(low) for low, _ in SIZE_BUCKETS] + ["novel"]
    return (order.index(name) if name in order else len(order), name)
