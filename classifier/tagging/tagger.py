"""Auto-tagging: every image without a human label gets the class its labelled images
point to, with a calibrated confidence, or "unknown" (no label) when it is not close
enough to any labelled class.

The default head is the prototype head (lookalike.classifier.tagging.proto_head): the
nearest class prototype, and "unknown" from how close the image is to the class's
labelled images measured against that class's own spread, so that the decision does
not depend on how many unlabelled images a class has (issue 17). On the long-tailed
dev library (51 classes of 31-435 images plus distractors, 10 random splits, 10
classes never labelled; ``scripts/bench_tagging.py --long-tailed``) the kNN head below
left most images of the largest classes unknown (calibration error 0.57 on classes of
more than 400 images); the prototype head's error is 0.04-0.07 in every size bucket.
At most ``NOVEL_TAGGED`` of the calibration's simulated images of hidden classes are
tagged (the novelty bar): without it the accuracy-maximising rule tags many images of
unlabelled classes when most images are of labelled ones.

A library is then tagged with its clusters (``DEFAULT_CLUSTERS``; ``tag
--without-clusters``: the head alone): an image in a labelled class's group is tagged,
one in a new category's group is unknown, the rest as the head decides
(lookalike.classifier.tagging.cluster_vote). On the long-tailed dev library, 10 labels a
class, splits 0-9, known accuracy worst 0.845 -> 0.922 and novel-class images unknown
worst 0.620 -> 0.867; the distractors left unknown 0.934 -> 0.734. The confidences are
then calibrated by tagging the library again with the clusters and some labels hidden
(:func:`replay_clusters`): calibration error over all answers 0.042 (0.103 with the
head's confidence kept).

The kNN head (``--head knn``, the earlier default; measured on balanced dev classes
with random class splits: 10 labels for each of 41 classes, 10 classes never
labelled, plus distractors):

1. Vectors are power-normalised (square root), centred on the library mean and
   L2-normalised again (+0.4 points of closed-set accuracy); every head works there.
2. A k=10 nearest-neighbour graph over *all* library images is built with FAISS
   (edge weight = cosine^3, symmetrised). Labelled images inject their class;
   the mass spreads along the graph (Zhou et al. 2004, alpha = 0.8).
   Novelty = log(mass per label of the best class) - log(the image's reach in the
   graph): on balanced classes of 31-40 images it kept 0.94 known-class accuracy at
   80% novel images unknown, but the mass per label thins out as a class spreads
   over more unlabelled images, so a large class looks like one nobody labelled.
3. The class is the average of the propagated class shares (normalised by the
   class's number of labels) and a ridge classifier on the labelled vectors:
   0.955 closed-set accuracy (label propagation alone 0.944, 1-NN 0.916).

lookalike.classifier.tagging.calibration turns any head's novelty and agreement into
the probability of being right; the answer is the most probable of the best class
and "unknown" (and --min-confidence can ask for more).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from lookalike.classifier.tagging.calibration import (
    Calibrator,
    Head,
    Scores,
    SimulationRows,
    SimulationSettings,
    expected_calibration_error,
    fit_calibrator,
    novelty_bar,
    simulate,
)
from lookalike.classifier.tagging.cluster_vote import (
    answer_kind,
    cluster_votes,
    fit_shifts,
    relabelled,
    replay_split,
    shifted,
)
from lookalike.classifier.tagging.heads import DEFAULT_CALIBRATION as INDUCTIVE_CALIBRATION
from lookalike.classifier.tagging.heads import make_inductive_head
from lookalike.classifier.tagging.knn_head import (
    KNN_DEFAULT_CALIBRATION,
    Graph,
    KnnHead,
)
from lookalike.classifier.tagging.proto_head import PROTO_DEFAULT_CALIBRATION, ProtoHead
from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.numerics import l2_normalize
from lookalike.indexer.store.boxes import labelled_box_vectors
from lookalike.indexer.store.library import Library

log = logging.getLogger(__name__)

HEADS = ("proto", "knn", "linear", "svm", "mlp")
DEFAULT_HEAD = "proto"
DEFAULT_MIN_CONFIDENCE = 0.0
# The prototype head tags at most this share of the calibration's simulated images of
# hidden classes: the operating point asked of the tagger (>= 85% of the images of
# classes nobody labelled left unknown), which the accuracy-maximising rule alone
# misses when most images are of known classes.
NOVEL_TAGGED = 0.15
# A library's tags are decided with its clusters where they speak (cluster_vote.py;
# ``tag --without-clusters``: the head alone).
DEFAULT_CLUSTERS = True


class NotEnoughLabels(LookalikeError):
    """Tagging needs human labels in at least two classes."""

    def __init__(self, images: int, classes: int) -> None:
        self.images = images
        self.classes = classes
        if images == 0:
            msg = "the library has no images; index a folder first (lookalike index FOLDER)"
        else:
            msg = (
                f"tagging needs labelled images of at least two classes, the library has "
                f"{classes}; label some (lookalike labels set PATH... --as LABEL, or "
                f"labels import FILE.csv), or see the model's own guesses with "
                f"lookalike tag --suggest"
            )
        super().__init__(msg)


def prepare(vectors: np.ndarray) -> np.ndarray:
    """Power-normalise, centre on the mean and L2-normalise (the tagger's vector space).

    Non-negative features (CNN activations) get a square root; features of either
    sign (CLIP) a signed square root.
    """
    x = np.asarray(vectors, dtype=np.float32)
    x = np.sign(x) * np.sqrt(np.abs(x))
    x = l2_normalize(x)
    if len(x):
        x = x - x.mean(axis=0, keepdims=True)
    return l2_normalize(x)


def make_head(
    name: str,
    x: np.ndarray,
    graph: Graph | None = None,
    seed: int = 0,
    projected: np.ndarray | None = None,
) -> Head:
    """A head by name over the prepared vectors ``x`` of every library image; ``graph``
    (the kNN head's) and ``projected`` (heads.project(x, seed), the inductive heads')
    when already computed."""
    if name == "knn":
        return KnnHead(x, graph=graph)
    if name == "proto":
        return ProtoHead(x)
    return make_inductive_head(name, x, seed=seed, z=projected)


def head_settings(head: Head) -> dict[str, Any]:
    """The settings a head ran with (its ``settings`` dataclass), as a dict; {} when
    the head has none (the inductive heads)."""
    settings = getattr(head, "settings", None)
    return asdict(settings) if is_dataclass(settings) and not isinstance(settings, type) else {}


def default_calibration(name: str) -> Calibrator:
    if name == "proto":
        return PROTO_DEFAULT_CALIBRATION
    return KNN_DEFAULT_CALIBRATION if name == "knn" else INDUCTIVE_CALIBRATION


def single_threaded_blas():
    """The tagger's matrices are small (labels x dim): BLAS threads only spin, and on a
    shared machine they cost several times the work itself (measured: 13.5 s of CPU
    for a fit that takes 2.1 s single-threaded)."""
    # Imported here, not on import of this module: scipy takes seconds to load.
    import scipy.linalg  # noqa: F401 -- loads scipy's BLAS so that the limit covers it
    import scipy.sparse  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def simulation_for(head: str, seed: int = 0) -> SimulationSettings:
    """Calibration rounds: fewer for the heads that refit a scikit-learn model each round."""
    if head == "proto":
        return SimulationSettings(seed=seed, novel_tagged=NOVEL_TAGGED)
    if head == "knn":
        return SimulationSettings(seed=seed)
    return SimulationSettings(min_rounds=6, max_rounds=8, seed=seed)


class Tagger:
    """A head plus its calibrator: fit on labelled rows, then tag any rows."""

    def __init__(self, head: Head, simulation: SimulationSettings | None = None) -> None:
        self.head = head
        self.simulation = simulation or simulation_for(head.name)
        self.calibrator: Calibrator | None = None
        self.rows: SimulationRows | None = None
        self.novelty_bar = float("-inf")
        # figures of the replay that calibrated the clusters' answers (tag_vectors with
        # clusters; None: no replay)
        self.replay: HeldOutFigures | None = None

    def fit(self, seeds: np.ndarray, y: np.ndarray) -> Tagger:
        if len(np.unique(y)) < 2:
            raise NotEnoughLabels(len(self.head.x), len(np.unique(y)))

        def fit_score(keep: np.ndarray, y_keep: np.ndarray, hidden: np.ndarray) -> Scores:
            self.head.fit(keep, y_keep)
            return self.head.score(hidden)

        with single_threaded_blas():
            self.head.prepare_seeds(seeds)
            self.rows = simulate(fit_score, seeds, y, self.simulation)
            self.calibrator = fit_calibrator(
                self.rows,
                default_calibration(self.head.name),
                informative=self.head.name in ("knn", "proto"),
            )
            self.novelty_bar = novelty_bar(self.rows, self.simulation, len(np.unique(y)))
            self.head.fit(seeds, y)
        return self

    def predict(self, rows: np.ndarray, adapt_prior: bool = True) -> Prediction:
        """Class, P(known) and confidence for ``rows``; the prior adapts to these rows."""
        scores = self.head.score(rows)
        assert self.calibrator is not None, "fit first"
        if adapt_prior:
            self.calibrator.adapt_prior(scores)
        return Prediction(
            scores.pred,
            self.calibrator.p_known(scores),
            self.calibrator.confidence(scores),
            scores.novelty >= self.novelty_bar,
        )


class Prediction(NamedTuple):
    pred: np.ndarray  # (n,) class index of the best guess
    p_known: np.ndarray  # (n,) probability that the image is of some labelled class
    confidence: np.ndarray  # (n,) probability that the best guess is right
    close: np.ndarray | None = None  # (n,) bool: above the tagger's novelty bar
    # (n,) int8 from the library's clusters (tagging/cluster_vote.py): 1 tagged, -1
    # unknown, 0 the calibrated rule decides; None: no clusters asked for
    votes: np.ndarray | None = None
    # (cluster_vote.CELLS,) logit shifts of the confidence of the answers the clusters
    # decide, per kind of answer (cluster_vote.answer_kind), from the replay of
    # :func:`replay_clusters`; None: the head's confidence as it is
    shifts: np.ndarray | None = None
    # (n,) bool: the rows the groups tag with their group's label, not ``pred`` (the
    # head's unsure best guess; cluster_vote.relabelled); None: none
    relabel: np.ndarray | None = None

    def head_tagged(self) -> np.ndarray:
        """Which rows the head alone tags (``decide`` without the clusters' votes and
        without ``min_confidence``)."""
        tagged = self.confidence > 1.0 - self.p_known
        if self.close is not None:
            # Below the tagger's novelty bar: unknown, whatever the calibration says.
            tagged &= self.close
        return tagged

    def decide(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> tuple[np.ndarray, ...]:
        """(tagged?, confidence of the answer) for each row.

        The answer is the most probable one among the labelled classes and
        "unknown": a tag when P(best guess right) > P(no labelled class), and at
        least ``min_confidence``. An unknown answer's confidence is P(no labelled
        class), so every confidence is the probability that the answer is right.
        With ``votes`` (the library's clusters), they decide where they speak, and
        with ``shifts`` every answer's confidence is moved by its kind's shift (the
        answers the clusters leave to the head too: they are the ones the clusters
        could not place, not the rows the head's calibration saw; cluster_vote.py).
        """
        head_tagged = self.head_tagged()
        tagged, answer = head_tagged, np.where(head_tagged, self.confidence, 1.0 - self.p_known)
        if self.votes is not None:  # where the clusters speak, they decide
            tagged = np.where(self.votes != 0, self.votes > 0, head_tagged)
            answer = np.where(tagged, self.confidence, 1.0 - self.p_known)
            if self.relabel is not None:  # the group's label: right where the guess is not
                answer = np.where(tagged & self.relabel, 1.0 - self.confidence, answer)
            if self.shifts is not None:
                kind = answer_kind(tagged, head_tagged, self.votes, self.relabel)
                answer = shifted(answer, self.shifts[kind])
        dropped = tagged & (answer < min_confidence)
        return tagged & ~dropped, np.where(dropped, 1.0 - self.p_known, answer)


def tag_vectors(
    vectors: np.ndarray,
    seeds: np.ndarray,
    labels: list[str] | np.ndarray,
    head: str = DEFAULT_HEAD,
    seed: int = 0,
    clusters: bool = False,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> tuple[np.ndarray, list[str], Prediction, Tagger]:
    """Tag every non-seed row of ``vectors`` from the labelled ``seeds`` (pure compute);
    with ``clusters``, the library's clusters decide where they speak (cluster_vote.py);
    ``min_confidence``: the one the answers will be decided at (the replay's figures
    are measured at it).

    Returns:
        (rows, best-guess label per row, the prediction, the fitted tagger);
        ``prediction.decide(min_confidence)`` says which guesses become tags.
    """
    if head not in HEADS:
        raise LookalikeError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    names, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    if len(names) < 2:
        raise NotEnoughLabels(len(vectors), len(names))
    rows, guesses, prediction, tagger = _tag(vectors, seeds, names, y, head, seed, clusters)
    if clusters:
        replayed = replay_clusters(vectors, seeds, names[y], head, seed, min_confidence)
        if replayed is not None:
            prediction = prediction._replace(shifts=replayed[0])
            tagger.replay = replayed[1]
    return rows, guesses, prediction, tagger


def _tag(
    vectors: np.ndarray,
    seeds: np.ndarray,
    names: np.ndarray,
    y: np.ndarray,
    head: str,
    seed: int,
    clusters: bool,
) -> tuple[np.ndarray, list[str], Prediction, Tagger]:
    """:func:`tag_vectors` without the clusters' calibration (``y``: class indices into
    ``names``)."""
    x = prepare(vectors)
    tagger = Tagger(make_head(head, x, seed=seed), simulation_for(head, seed)).fit(seeds, y)
    rows = np.setdiff1d(np.arange(len(vectors)), seeds)
    prediction = tagger.predict(rows)
    guesses = [str(names[p]) for p in prediction.pred]
    if clusters:
        votes, group = cluster_votes(vectors, rows, seeds, names[y], guesses, prediction.p_known)
        counts = Counter(str(n) for n in names[y])
        relabel = relabelled(votes, group, guesses, prediction.confidence, counts)
        for i in np.flatnonzero(relabel):
            guesses[i] = str(group[i])
        prediction = prediction._replace(votes=votes, relabel=relabel)
    return rows, guesses, prediction, tagger


def replay_clusters(
    vectors: np.ndarray,
    seeds: np.ndarray,
    labels: np.ndarray,
    head: str,
    seed: int,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> tuple[np.ndarray, HeldOutFigures] | None:
    """(the logit shifts that calibrate the clusters' answers, cluster_vote.py; the
    figures of the replay), from the library tagged again with the clusters and some
    labels hidden (cluster_vote.replay_split): the hidden images of a class still
    labelled should get its label, those of a class hidden whole "unknown". The
    figures' calibration error is of the shifted confidences, each half of the hidden
    images shifted as the other half says. None when the replay keeps fewer than two
    classes or hides images of only one of the two (every class has one label: none can
    be part hidden; the shifts would learn that every tag is wrong)."""
    kept, hidden = replay_split(labels, seed)
    names, y = np.unique(labels[kept], return_inverse=True)
    truth = labels[hidden]
    of_known = np.isin(truth, names)
    if len(names) < 2 or of_known.all() or not of_known.any():
        return None
    rows, guesses, prediction, _ = _tag(vectors, seeds[kept], names, y, head, seed, True)
    at = np.searchsorted(rows, seeds[hidden])
    tagged, answer = prediction.decide()
    head_tagged = prediction.head_tagged()
    guessed = np.asarray(guesses)[at] == truth
    right = np.where(of_known, tagged[at] & guessed, ~tagged[at])
    assert prediction.votes is not None
    relabel = None if prediction.relabel is None else prediction.relabel[at]
    kind = answer_kind(tagged[at], head_tagged[at], prediction.votes[at], relabel)
    half = np.random.default_rng(seed).permutation(len(at)) % 2 == 0
    held_out = np.empty(len(at))
    for part in (half, ~half):
        other = fit_shifts(answer[at][~part], right[~part], kind[~part])
        held_out[part] = shifted(answer[at][part], other[kind[part]])
    # The answers as the run decides them: a tag below min_confidence is unknown.
    kept = tagged[at] & (held_out >= min_confidence)
    figures = HeldOutFigures(
        rounds_rows=int(len(at)),
        known_accuracy=_mean((kept & guessed)[of_known]),
        novel_unknown=_mean(~kept[~of_known]),
        calibration_error=expected_calibration_error(held_out, right),
        fallback=False,
    )
    return fit_shifts(answer[at], right, kind), figures


# -- a library -----------------------------------------------------------------


class TagResult(NamedTuple):
    id: int
    path: str
    label: str | None  # None: unknown
    confidence: float  # probability that the answer (label, or unknown) is right


@dataclass(frozen=True)
class HeldOutFigures:
    """A tag run measured on what it hid from itself: the calibration's own rounds
    (hidden classes and images), or the clusters' replay (:func:`replay_clusters`)."""

    rounds_rows: int  # simulated rows (hidden labels) the figures come from
    known_accuracy: float | None  # known-class images tagged right
    novel_unknown: float | None  # images of hidden classes left unknown
    calibration_error: float  # expected calibration error of the answers' confidence
    fallback: bool  # too few labels to calibrate: default confidences


@dataclass(frozen=True)
class TagRunInfo:
    """What a tag run stores in the catalog's meta table (under "tagging")."""

    head: str
    min_confidence: float
    at: float  # when it finished (seconds since the epoch)
    seconds: float
    images: int
    labelled: int
    classes: int
    tagged: int
    unknown: int
    labels_version: int  # the catalog's labels_version the run saw
    calibration: Calibrator
    validation: HeldOutFigures | None  # None: too few rows to measure
    settings: dict[str, Any]  # the settings of the head that ran ({} for a head without)
    # The last evaluation's stored figures for this head, when there was one.
    evaluation: dict[str, Any] | None = None
    clusters: bool = False  # the library's clusters decided where they spoke
    # with the clusters: their replay with labels hidden (replay_clusters), the
    # figures of the answers given; None: no replay (the head's ``validation`` alone)
    replay: HeldOutFigures | None = None

    @property
    def held_out(self) -> HeldOutFigures | None:
        """The run's held-out figures: the clusters' replay when there was one, else the
        head's own calibration rounds."""
        return self.replay or self.validation

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["calibration"] = self.calibration.to_dict()
        doc["validation"] = asdict(self.validation) if self.validation else {}
        doc["replay"] = asdict(self.replay) if self.replay else {}
        if self.evaluation is None:
            del doc["evaluation"]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TagRunInfo:
        fields = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        fields["calibration"] = Calibrator.from_dict(doc["calibration"])
        held_out = doc.get("validation")
        fields["validation"] = HeldOutFigures(**held_out) if held_out else None
        replay = doc.get("replay")
        fields["replay"] = HeldOutFigures(**replay) if replay else None
        return cls(**fields)


@dataclass
class TagRun:
    """The outcome of tagging a library: one result per image without a human label."""

    results: list[TagResult]
    info: TagRunInfo  # also stored in the catalog's meta table under "tagging"

    def as_json(self) -> list[dict]:
        return [
            {"path": r.path, "label": r.label, "confidence": round(r.confidence, 4)}
            for r in self.results
        ]


META_KEY = "tagging"
EVALUATION_KEY = "evaluation"  # lookalike.classifier.tagging.validation.META_KEY


def tag_library(
    library: Library,
    head: str = DEFAULT_HEAD,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    seed: int = 0,
    clusters: bool = DEFAULT_CLUSTERS,
) -> TagRun:
    """Tag every image of the library that has no human label; store the tags.

    Args:
        library: an open library, writable.
        head: proto (default), knn, linear, svm or mlp.
        min_confidence: tags less likely right than this are stored as unknown.
        seed: for the calibration's random rounds (results are reproducible).
        clusters: the library's clusters decide where they speak (cluster_vote.py).

    Returns:
        The results (also written to the tags table, replacing the previous run's)
        and the run's description (also in the meta table under "tagging").

    Raises:
        NotEnoughLabels: an empty library, or labels of fewer than two classes.
        LibraryBusy: another process (an index run) is writing to the library; the
            run holds the writer lock from reading the vectors to storing the tags,
            so what it stores always matches the library it read.
    """
    with library.locked():
        run = compute_tags(library, head, min_confidence, seed, clusters)
        save_tags(library, run)
    return run


def compute_tags(
    library: Library,
    head: str = DEFAULT_HEAD,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    seed: int = 0,
    clusters: bool = DEFAULT_CLUSTERS,
) -> TagRun:
    """:func:`tag_library` without the writing (any open library; see there).

    The web app computes on its read-only library and stores the run with
    :func:`save_tags` through its writer, which it holds only for that.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise LookalikeError(f"min-confidence must be between 0 and 1, not {min_confidence}")
    if head not in HEADS:
        raise LookalikeError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    started = time.perf_counter()
    cat = library.catalog
    ids, vectors = cat.vectors()
    labels = cat.labels()
    row_of = {int(i): r for r, i in enumerate(ids)}
    pairs = [(row_of[i], lab) for i, lab in labels.items() if i in row_of]
    # Labelled boxes are labelled vectors too (their crops'): extra seed rows after
    # the images, so they join their label's prototype and are never tagged themselves.
    model = library.model_info()
    box_labels, box_vectors = (
        labelled_box_vectors(cat, model.key()) if model is not None else ([], None)
    )
    if box_labels and box_vectors is not None and len(ids):
        pairs += [(len(ids) + n, lab) for n, lab in enumerate(box_labels)]
        vectors = np.concatenate([vectors, box_vectors])
    classes = len({lab for _, lab in pairs})
    if len(ids) == 0 or classes < 2:
        raise NotEnoughLabels(len(ids), classes)
    seeds = np.array([r for r, _ in pairs], dtype=np.int64)
    rows, guesses, prediction, tagger = tag_vectors(
        vectors,
        seeds,
        [lab for _, lab in pairs],
        head=head,
        seed=seed,
        clusters=clusters,
        min_confidence=min_confidence,
    )
    tagged, confidence = prediction.decide(min_confidence)
    assert tagger.calibrator is not None, "tag_vectors returns a fitted tagger"
    paths = cat.paths(ids[rows])
    results = [
        TagResult(int(ids[r]), paths[int(ids[r])], g if t else None, float(c))
        for r, g, t, c in zip(rows, guesses, tagged, confidence, strict=True)
    ]
    info = TagRunInfo(
        head=head,
        min_confidence=min_confidence,
        at=time.time(),
        seconds=round(time.perf_counter() - started, 3),
        images=int(len(ids)),
        labelled=int(len(seeds)) - len(box_labels),  # images; boxes are extra seeds
        classes=classes,
        tagged=int(tagged.sum()),
        unknown=int((~tagged).sum()),
        labels_version=cat.labels_version(),
        calibration=replace(tagger.calibrator),
        validation=simulated_figures(tagger, min_confidence),
        settings=head_settings(tagger.head),
        evaluation=_evaluation_of(library, head),
        clusters=clusters,
        replay=tagger.replay,
    )
    return TagRun(results, info)


def save_tags(library: Library, run: TagRun) -> None:
    """Store a run's tags (replacing the previous run's) and its description.

    A run computed on a snapshot (the web app's read-only library) may outlive some of
    its images: an index run that removed them meanwhile. Their tags are dropped;
    images added meanwhile stay untagged until the next run.
    """
    cat = library.catalog
    present = cat.paths([r.id for r in run.results])
    with cat.transaction() as conn:
        tags = [(r.id, r.label, r.confidence) for r in run.results if r.id in present]
        cat.replace_tags(conn, tags, run.info.head, run.info.at)
        cat.set_meta(META_KEY, json.dumps(run.info.to_json()), conn)


def _evaluation_of(library: Library, head: str) -> dict[str, Any] | None:
    """The last evaluation's stored figures for ``head``, if there was an evaluation."""
    text = library.catalog.get_meta(EVALUATION_KEY)
    return json.loads(text).get("heads", {}).get(head) if text else None


def simulated_figures(
    tagger: Tagger, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> HeldOutFigures | None:
    """Held-out figures from the calibration's own rounds (hidden classes and images),
    of the answers decided at ``min_confidence``."""
    rows, cal = tagger.rows, tagger.calibrator
    if rows is None or cal is None or len(rows.novel) == 0:
        return None
    scores = Scores(np.zeros(len(rows.novel), dtype=int), rows.novelty, rows.agreement)
    p_known = cal.p_known(scores, prior=0.5)
    confidence = p_known * cal.p_right_if_known(scores)
    tagged = confidence > 1 - p_known
    decided = tagged & (confidence >= min_confidence)
    known = ~rows.novel
    right = np.where(known, tagged & rows.right, ~tagged)
    return HeldOutFigures(
        rounds_rows=int(len(rows.novel)),
        known_accuracy=_mean(decided[known] & rows.right[known]),
        novel_unknown=_mean(~decided[rows.novel]),
        calibration_error=expected_calibration_error(
            np.where(tagged, confidence, 1 - p_known), right
        ),
        fallback=cal.fallback,
    )


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def last_run(library: Library) -> TagRunInfo | None:
    """The stored description of the last tag run, or None."""
    text = library.catalog.get_meta(META_KEY)
    return TagRunInfo.from_json(json.loads(text)) if text else None
