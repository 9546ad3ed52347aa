"""Confidence that means "probability this tag is right", learnt from the user's own labels.

A head (kNN, linear, ...) gives every image a predicted class, a *novelty* score
(how close the image is to the labelled classes; higher is closer) and an
*agreement* (the head's own probability for its class). Neither is a probability
of being right: an image of a class nobody labelled still gets some class.

So the calibrator replays the situation on the labelled images: in each round a
few whole classes are hidden (they play the classes nobody has named yet) and a
few images of every other class are hidden (they play the unlabelled images of
known classes); the head is fitted on what is left and scores the hidden images.
From these rows two logistic models are fitted:

- P(known | novelty), with the two groups weighted equally (a 50/50 prior);
- P(right | known, novelty, agreement).

At tagging time the 50/50 prior is replaced by the share of known-class images
among the images being tagged, estimated by EM over their novelty scores
(Saerens et al., 2002), and confidence = P(known) * P(right | known).

Measured on the dev embeddings (10 random class splits, 10 labels for each of
41 classes, 10 classes and 100 distractors never labelled): expected
calibration error 0.025 of the answers' confidence; per confidence bin, mean
confidence -> share right: 0.35 -> 0.39, 0.51 -> 0.48, 0.71 -> 0.66,
0.97 -> 0.97. The EM prior came out at 0.75 for a true 0.71.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

import numpy as np

MIN_ROWS = 4  # fewer simulated rows of a kind than this: fall back to the head's defaults
PRIOR_STRENGTH = 1.0  # pull of the default calibration (in rows' worth of evidence, roughly)


class Scores(NamedTuple):
    """What a head says about some images (rows)."""

    pred: np.ndarray  # (n,) int: index of the predicted class
    novelty: np.ndarray  # (n,) float: higher = closer to the labelled classes
    agreement: np.ndarray  # (n,) float in [0, 1]: the head's own probability of pred


class Head(Protocol):
    """A classifier head over the prepared vectors ``x`` of every library image:
    kNN (lookalike.classifier.tagging.knn_head) or an inductive one (.heads)."""

    name: str
    x: np.ndarray

    def prepare_seeds(self, seeds: np.ndarray) -> None:
        """Precompute what fits on subsets of ``seeds`` (the calibration rounds) share."""

    def fit(self, seeds: np.ndarray, y: np.ndarray) -> None:
        """Fit on the rows ``seeds`` of ``x`` with class indices ``y``."""

    def score(self, rows: np.ndarray) -> Scores:
        """Class, novelty and agreement for the rows ``rows`` of ``x``."""


class SimulationRows(NamedTuple):
    novelty: np.ndarray
    agreement: np.ndarray
    novel: np.ndarray  # bool: the image's class was hidden
    right: np.ndarray  # bool: the image's class was kept and predicted correctly


# A function that fits a head on (seed rows, their class indices) and scores other rows.
FitScore = Callable[[np.ndarray, np.ndarray, np.ndarray], Scores]


@dataclass(frozen=True)
class SimulationSettings:
    hidden_classes: int = 2  # classes hidden per round (when there are at least 10)
    hidden_fraction: float = 0.1  # share of each kept class's labels hidden per round
    min_rounds: int = 8
    max_rounds: int = 20
    seed: int = 0
    # With a class-relative novelty (the prototype head): at most this share of the
    # simulated images of hidden classes would be tagged (None: no such bound).
    novel_tagged: float | None = None


def simulate(
    fit_score: FitScore,
    seeds: np.ndarray,
    y: np.ndarray,
    settings: SimulationSettings = SimulationSettings(),
) -> SimulationRows:
    """Hide classes and images of the labelled set, refit, and score what was hidden.

    Args:
        fit_score: fits the head on the kept seeds and scores the hidden rows.
        seeds: row numbers of the labelled images.
        y: their class indices.
        settings: how much to hide and how many rounds.
    """
    rng = np.random.default_rng(settings.seed)
    classes = np.unique(y)
    per_round = settings.hidden_classes if len(classes) >= 10 else 1
    order = rng.permutation(classes)
    groups = [order[i : i + per_round] for i in range(0, len(order), per_round)]
    rounds = int(np.clip(len(groups), settings.min_rounds, settings.max_rounds))
    out: list[tuple] = []
    for r in range(rounds):
        hidden_cls = groups[r % len(groups)]
        hidden = np.isin(y, hidden_cls)
        for c in classes:
            if c in hidden_cls:
                continue
            members = np.flatnonzero(y == c)
            if len(members) < 2:
                continue
            draw = rng.random(len(members)) < settings.hidden_fraction
            if draw.all():
                draw[rng.integers(len(members))] = False
            hidden[members[draw]] = True
        keep = ~hidden
        if not hidden.any() or len(np.unique(y[keep])) < 1:
            continue
        scores = fit_score(seeds[keep], y[keep], seeds[hidden])
        novel = np.isin(y[hidden], hidden_cls)
        right = ~novel & (scores.pred == y[hidden])
        out.append((scores.novelty, scores.agreement, novel, right))
    if not out:
        empty = np.zeros(0)
        return SimulationRows(empty, empty, empty.astype(bool), empty.astype(bool))
    return SimulationRows(*(np.concatenate(parts) for parts in zip(*out, strict=True)))


@dataclass
class Calibrator:
    """Maps a head's scores to the probability that its tag is right (module docstring)."""

    known: tuple[float, float]  # logistic (intercept, novelty weight) -> P(known), 50/50 prior
    right: tuple[float, float, float]  # (intercept, novelty, agreement) -> P(right | known)
    prior: float = 0.5  # share of known-class images among those being tagged
    rows: int = 0  # simulated rows it was fitted on
    fallback: bool = False  # too few labels to fit; the defaults were used

    def p_known(self, scores: Scores, prior: float | None = None) -> np.ndarray:
        p = _sigmoid(self.known[0] + self.known[1] * scores.novelty)
        return _shift_prior(p, self.prior if prior is None else prior)

    def p_right_if_known(self, scores: Scores) -> np.ndarray:
        b0, b1, b2 = self.right
        return _sigmoid(b0 + b1 * scores.novelty + b2 * scores.agreement)

    def confidence(self, scores: Scores) -> np.ndarray:
        return self.p_known(scores) * self.p_right_if_known(scores)

    def adapt_prior(self, scores: Scores, iterations: int = 200) -> float:
        """Estimate (and keep) the share of known-class images among ``scores``' rows."""
        if len(scores.novelty) == 0:
            return self.prior
        p = self.p_known(scores, prior=0.5)
        pi = 0.5
        for _ in range(iterations):
            new = float(np.mean(_shift_prior(p, pi)))
            if abs(new - pi) < 1e-6:
                break
            pi = new
        self.prior = float(np.clip(pi, 0.02, 0.98))
        return self.prior

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> Calibrator:
        return cls(
            known=tuple(doc["known"]),
            right=tuple(doc["right"]),
            prior=float(doc.get("prior", 0.5)),
            rows=int(doc.get("rows", 0)),
            fallback=bool(doc.get("fallback", False)),
        )


def fit_calibrator(
    rows: SimulationRows, default: Calibrator, informative: bool = False
) -> Calibrator:
    """Fit both logistic models on simulated rows.

    With ``informative``, ``default`` (fitted on the dev data, for a novelty score
    whose scale does not depend on the library) acts as a prior: with few
    simulated rows, or rows that separate perfectly (a small library), the fit
    stays near it; with hundreds of rows the data decides. Otherwise the
    coefficients are shrunk towards zero on standardised features. Too few rows
    of a kind: the default itself.
    """
    novel, known = rows.novel, ~rows.novel
    if novel.sum() < MIN_ROWS or known.sum() < MIN_ROWS:
        return Calibrator(default.known, default.right, rows=len(novel), fallback=True)
    weights = np.where(novel, 0.5 / novel.mean(), 0.5 / known.mean())
    k0, k1 = logistic_fit(
        [rows.novelty], known, weights, prior=default.known if informative else None
    )
    features = [rows.novelty[known], rows.agreement[known]]
    r0, r1, r2 = logistic_fit(
        features,
        rows.right[known],
        np.ones(int(known.sum())),
        prior=default.right if informative else None,
    )
    return Calibrator((k0, k1), (r0, r1, r2), rows=len(novel))


def logistic_fit(
    features: list[np.ndarray],
    target: np.ndarray,
    weights: np.ndarray,
    prior: Sequence[float] | None = None,
    strength: float = PRIOR_STRENGTH,
) -> tuple[float, ...]:
    """(intercept, weight per feature) of a weighted logistic regression (Newton's method).

    With ``prior``, the coefficients are penalised by ``strength / 2 * |w - prior|^2``
    (a Gaussian prior around it, on the raw features). Without, the features are
    standardised and their weights penalised towards zero (as scikit-learn's
    ``LogisticRegression(C=1 / strength)``), the intercept is free. A few
    features only, so no scikit-learn import on the tagging path.
    """
    if prior is None:
        stats = [(float(np.mean(f)), float(np.std(f)) or 1.0) for f in features]
        scaled = [(f - m) / sd for f, (m, sd) in zip(features, stats, strict=True)]
        penalty = np.full(len(features) + 1, strength)
        penalty[0] = 0.0
        w = _newton(scaled, target, weights, np.zeros(len(features) + 1), penalty)
        intercept = w[0] - sum(wi * m / sd for wi, (m, sd) in zip(w[1:], stats, strict=True))
        return (
            float(intercept),
            *(float(wi / sd) for wi, (_m, sd) in zip(w[1:], stats, strict=True)),
        )
    centre = np.asarray(prior, float)
    w = _newton(features, target, weights, centre, np.full(len(centre), strength))
    return tuple(float(v) for v in w)


def _newton(features, target, weights, centre, penalty) -> np.ndarray:
    x = np.column_stack([np.ones(len(target)), *features]).astype(float)
    t = np.asarray(target, float)
    w = centre.copy()

    def objective(v: np.ndarray) -> float:
        z = x @ v
        return float(
            np.sum(weights * (np.logaddexp(0.0, z) - t * z))
            + 0.5 * np.sum(penalty * (v - centre) ** 2)
        )

    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (weights * (p - t)) + penalty * (w - centre)
        hess = (x * (weights * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        # Damped steps: separable rows can make the full Newton step overshoot.
        step = step / max(1.0, float(np.max(np.abs(step))) / 5.0)
        # Backtracking: a step that does not lower the objective is halved (separable
        # rows with features on a wide scale made the plain steps oscillate).
        before = objective(w)
        for _halving in range(30):
            if objective(w - step) <= before:
                break
            step = step / 2.0
        w = w - step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def expected_calibration_error(confidence: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width bins, weighted by bin size."""
    confidence = np.asarray(confidence, float)
    right = np.asarray(right, bool)
    if len(confidence) == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(confidence[m].mean() - right[m].mean())
    return float(total)


def reliability(confidence: np.ndarray, right: np.ndarray, bins: int = 5) -> list[dict]:
    """Per confidence bin: mean confidence, share right, count (a reliability diagram)."""
    confidence = np.asarray(confidence, float)
    right = np.asarray(right, bool)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "confidence": float(confidence[m].mean()) if m.any() else None,
                "right": float(right[m].mean()) if m.any() else None,
                "count": int(m.sum()),
            }
        )
    return out


def novelty_bar(rows: SimulationRows, settings: SimulationSettings, classes: int) -> float:
    """The novelty below which an image is left unknown whatever the calibration says:
    the level that ``1 - settings.novel_tagged`` of the simulated novel images stay
    below (-inf without a bound, or with fewer than MIN_ROWS simulated novel images).
    With fewer than 10 labelled ``classes`` the share is cut in proportion: a hidden
    class is then compared with very few others, fewer than an unlabelled class
    meets, so its simulated novelty runs low.
    """
    novel = rows.novelty[rows.novel]
    if settings.novel_tagged is None or len(novel) < MIN_ROWS:
        return float("-inf")
    share = settings.novel_tagged * min(1.0, classes / 10)
    bar = float(np.quantile(novel, 1.0 - share))
    return bar


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _shift_prior(p_balanced: np.ndarray, prior: float) -> np.ndarray:
    """Posterior under ``prior`` from a posterior fitted under a 50/50 prior."""
    a = prior * p_balanced
    b = (1 - prior) * (1 - p_balanced)
    return a / np.maximum(a + b, 1e-12)
