"""The kNN head: label propagation over the library's k-NN graph, plus a ridge classifier.

Steps 2 and 3 of :mod:`classifier.tagging.tagger` (its docstring has the measurements): a k=10
nearest-neighbour graph over all library images spreads the labelled images' classes
(Zhou et al. 2004); novelty is the mass per label of the best class against the image's
reach in the graph; the class averages the propagated shares and a ridge classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.classifier.neighbours import knn
from lookalike.classifier.tagging.calibration import Calibrator, Scores
from lookalike.indexer.numerics import softmax


@dataclass(frozen=True)
class KnnSettings:
    k: int = 10  # neighbours per image in the graph
    gamma: float = 3.0  # edge weight = max(cosine, 0) ** gamma
    alpha: float = 0.8  # share of mass passed on at each propagation step
    iterations: int = 40  # alpha**40 < 1e-3: converged for tagging purposes
    ridge: float = 0.3  # ridge classifier regulariser
    temperature: float = 0.1  # softmax temperature of the ridge scores


class Graph:
    """Symmetric, normalised k-NN graph over all rows of a vector matrix (FAISS)."""

    def __init__(self, matrix, reach: np.ndarray) -> None:
        self.matrix = matrix  # scipy.sparse CSR, D^-1/2 W D^-1/2
        self.reach = reach  # (n,) mass a uniform source leaves at each node

    @classmethod
    def build(cls, x: np.ndarray, settings: KnnSettings = KnnSettings()) -> Graph:
        """The graph of ``x``'s rows (exact neighbours up to 20k rows, then an IVF:
        lookalike.classifier.neighbours)."""
        import scipy.sparse as sp  # scipy: seconds to import, only once a graph is built

        n = len(x)
        k = min(settings.k, n - 1)
        if k < 1:
            return cls(sp.csr_matrix((n, n), dtype=np.float32), np.ones(n))
        sims, ids = knn(x, k + 1)
        me = np.arange(n)[:, None]
        # Drop the image itself (or, if a duplicate outranked it, the last neighbour).
        keep = (ids != me) & (ids >= 0)
        keep &= np.cumsum(keep, axis=1) <= k
        rows = np.broadcast_to(me, ids.shape)[keep]
        cols = ids[keep]
        vals = np.maximum(sims[keep], 0.0).astype(np.float64) ** settings.gamma
        w = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float64)
        w = w.maximum(w.T).tocsr()
        degree = np.asarray(w.sum(axis=1)).ravel()
        inv = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
        matrix = sp.diags(inv) @ w @ sp.diags(inv)
        graph = cls(matrix.tocsr(), np.ones(n))
        graph.reach = graph.propagate(np.ones((n, 1)), settings)[:, 0]
        return graph

    def propagate(self, sources: np.ndarray, settings: KnnSettings = KnnSettings()) -> np.ndarray:
        """F = sum_t (alpha W)^t sources, truncated after ``settings.iterations`` steps."""
        f = np.array(sources, dtype=np.float64)
        for _ in range(settings.iterations):
            f = settings.alpha * (self.matrix @ f) + sources
        return f


class KnnHead:
    """Label propagation plus a ridge classifier over the library's k-NN graph."""

    name = "knn"
    transductive = True

    def __init__(
        self, x: np.ndarray, settings: KnnSettings = KnnSettings(), graph: Graph | None = None
    ) -> None:
        self.x = x
        self.settings = settings
        self._graph = graph
        self._classes = np.zeros(0, dtype=int)
        # (seed ids, their Gram matrix) from prepare_seeds; None until then.
        self._gram: tuple[set[int], np.ndarray] | None = None

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = Graph.build(self.x, self.settings)
        return self._graph

    def fit(self, seeds: np.ndarray, y: np.ndarray) -> None:
        classes, yi = np.unique(y, return_inverse=True)
        self._classes = classes
        onehot = np.zeros((len(seeds), len(classes)))
        onehot[np.arange(len(seeds)), yi] = 1.0
        sources = np.zeros((len(self.x), len(classes)))
        np.add.at(sources, seeds, onehot)
        self._mass = self.graph.propagate(sources, self.settings)
        self._counts = onehot.sum(axis=0)
        self._ridge = self._fit_ridge(seeds, onehot)

    def prepare_seeds(self, seeds: np.ndarray) -> None:
        """Precompute the labelled vectors' Gram matrix for fits on subsets of ``seeds``."""
        if len(seeds) >= self.x.shape[1]:
            xs = self.x[seeds]
            self._gram = (set(int(s) for s in seeds), (xs.T @ xs).astype(np.float64))

    def _fit_ridge(self, seeds: np.ndarray, onehot: np.ndarray) -> np.ndarray:
        """Ridge weights; with many labels, from the cached Gram minus the left-out rows."""
        cached = self._gram
        if (
            cached is None
            or len(seeds) < self.x.shape[1]
            or not cached[0].issuperset(int(s) for s in seeds)
        ):
            return _ridge(self.x[seeds], onehot, self.settings.ridge)
        left_out = np.array(sorted(cached[0] - set(int(s) for s in seeds)), dtype=np.int64)
        gram = cached[1] - (self.x[left_out].T @ self.x[left_out] if len(left_out) else 0.0)
        target = onehot - 1.0 / onehot.shape[1]
        rhs = (self.x[seeds].T @ target).astype(np.float64)
        return _solve_psd(gram + self.settings.ridge * np.eye(len(gram)), rhs)

    def score(self, rows: np.ndarray) -> Scores:
        # Class-mass normalisation: a class with many labels does not outvote the others
        # (measured: 0.916 -> 0.940 accuracy with 2-20 labels a class).
        mass = self._mass[rows] / self._counts
        share = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-300)
        votes = softmax((self.x[rows] @ self._ridge) / self.settings.temperature, np.float64)
        probs = 0.5 * (share + votes)
        best = probs.argmax(axis=1)
        # Mass per labelled image of the class: removing labels (as the calibration's
        # simulation does) leaves its expectation unchanged.
        picked = mass[np.arange(len(rows)), best]
        novelty = np.log(np.maximum(picked, 1e-12)) - np.log(self.graph.reach[rows])
        return Scores(self._classes[best], novelty, probs[np.arange(len(rows)), best])


# Calibration used when the labels are too few to learn one (one label per class): the
# mean of the ones fitted with two labels a class on five dev splits (more labels give
# steeper curves: (16.8, 3.2) with ten).
KNN_DEFAULT_CALIBRATION = Calibrator(known=(8.6, 1.55), right=(0.6, 0.4, 7.2))


def _ridge(x: np.ndarray, onehot: np.ndarray, lam: float) -> np.ndarray:
    """Weights (dim, classes) of a ridge regression onto centred one-hot targets."""
    target = onehot - 1.0 / onehot.shape[1]
    if len(x) < x.shape[1]:  # dual form: a (labels x labels) solve
        gram = (x @ x.T).astype(np.float64) + lam * np.eye(len(x))
        return x.T @ _solve_psd(gram, target)
    gram = (x.T @ x).astype(np.float64) + lam * np.eye(x.shape[1])
    return _solve_psd(gram, (x.T @ target).astype(np.float64))


def _solve_psd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a x = b for a symmetric positive definite a (Cholesky)."""
    from scipy.linalg import cho_factor, cho_solve  # scipy: slow to import, needed here only

    return cho_solve(cho_factor(a, lower=True, check_finite=False), b, check_finite=False)
