"""Fast fits for the inductive heads (lookalike.classifier.tagging.heads), in numpy.

Weights are one matrix of ``d + 1`` rows (the last one the bias) and one column per
class. The linear probe (softmax cross-entropy) and the one-vs-rest linear SVM (squared
hinge) have smooth convex objectives, minimised with L-BFGS from the closed-form
least-squares fit of the same images (ridge regression on +-1 targets, cheap in
the heads' ``PCA_DIMS`` dimensions), which is close to both optima; the MLP trains
with Adam on mini-batches and stops when its loss stops falling.
Matrix products are float32, the optimiser's state float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

LBFGS_ITERATIONS = 100
LBFGS_GTOL = 1e-4
MLP_HIDDEN = 256
MLP_BATCH = 200
MLP_RATE = 3e-3
MLP_ALPHA = 1e-3
MLP_EPOCHS = 15  # at most
MLP_PATIENCE = 2  # epochs without a 1e-3 relative fall of the loss before stopping
MLP_TOL = 1e-3


def principal_axes(x: np.ndarray, dims: int) -> np.ndarray:
    """The ``dims`` principal axes of the rows of ``x`` (d x dims, float32), or the
    identity when the vectors have no more dimensions than that."""
    d = x.shape[1]
    if d <= dims:
        return np.eye(d, dtype=np.float32)
    x64 = np.asarray(x, dtype=np.float64)
    x64 = x64 - x64.mean(axis=0)
    _, vectors = np.linalg.eigh(x64.T @ x64)
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims], dtype=np.float32)


def least_squares(x: np.ndarray, y: np.ndarray, classes: int, lam: float) -> np.ndarray:
    """Ridge regression of +-1 one-vs-rest targets (with a free bias): d + 1 x classes."""
    n, d = x.shape
    a = np.hstack([np.asarray(x, dtype=np.float64), np.ones((n, 1))])
    target = -np.ones((n, classes))
    target[np.arange(n), y] = 1.0
    gram = a.T @ a / n
    gram[np.arange(d), np.arange(d)] += lam
    return np.linalg.solve(gram, a.T @ target / n)


def _minimise(objective, x: np.ndarray, classes: int, start: np.ndarray) -> np.ndarray:
    shape = (x.shape[1] + 1, classes)
    w0 = np.asarray(start, dtype=np.float64)
    result = minimize(
        lambda w: objective(w.reshape(shape)),
        w0.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": LBFGS_ITERATIONS, "gtol": LBFGS_GTOL},
    )
    return result.x.reshape(shape).astype(np.float32)


def _scores(w: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w32 = w.astype(np.float32)
    return w32, (x @ w32[:-1] + w32[-1]).astype(np.float64)


def _gradient(x: np.ndarray, g: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    grad = np.empty_like(w)
    grad[:-1] = (x.T @ g.astype(np.float32)).astype(np.float64) + lam * w[:-1]
    grad[-1] = g.sum(axis=0)
    return grad.ravel()


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, lam: float) -> np.ndarray:
    """Multinomial logistic regression: mean cross-entropy + lam/2 |W|^2 (bias free)."""
    n = len(y)
    index = np.arange(n)

    def objective(w):
        _, z = _scores(w, x)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1)
        loss = np.mean(np.log(total) - z[index, y]) + 0.5 * lam * np.sum(w[:-1] ** 2)
        g = e / total[:, None]
        g[index, y] -= 1.0
        return loss, _gradient(x, g / n, w, lam)

    return _minimise(objective, x, classes, least_squares(x, y, classes, lam))


def fit_squared_hinge(x: np.ndarray, y: np.ndarray, classes: int, lam: float) -> np.ndarray:
    """One-vs-rest linear SVMs: mean over images of the summed squared hinge losses
    + lam/2 |W|^2 (bias free), all classes at once."""
    n = len(y)
    sign = -np.ones((n, classes))
    sign[np.arange(n), y] = 1.0

    def objective(w):
        _, z = _scores(w, x)
        short = np.maximum(0.0, 1.0 - sign * z)
        loss = np.sum(short**2) / n + 0.5 * lam * np.sum(w[:-1] ** 2)
        return loss, _gradient(x, -2.0 * short * sign / n, w, lam)

    return _minimise(objective, x, classes, least_squares(x, y, classes, lam))


class MlpWeights(NamedTuple):
    w1: np.ndarray  # d x hidden
    b1: np.ndarray
    w2: np.ndarray  # hidden x classes
    b2: np.ndarray


def mlp_logits(m: MlpWeights, x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ m.w1 + m.b1, 0) @ m.w2 + m.b2


def _glorot(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    bound = np.sqrt(6.0 / (rows + cols))
    return rng.uniform(-bound, bound, (rows, cols)).astype(np.float32)


def fit_mlp(x: np.ndarray, y: np.ndarray, classes: int, seed: int = 0) -> MlpWeights:
    """One hidden ReLU layer, softmax output, L2 weight decay, Adam, early stopping."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    params = [
        _glorot(rng, d, MLP_HIDDEN),
        np.zeros(MLP_HIDDEN, np.float32),
        _glorot(rng, MLP_HIDDEN, classes),
        np.zeros(classes, np.float32),
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    x = np.asarray(x, dtype=np.float32)
    best, waited, step = np.inf, 0, 0
    for _ in range(MLP_EPOCHS):
        order = rng.permutation(len(y))
        total = 0.0
        for at in range(0, len(y), MLP_BATCH):
            batch = order[at : at + MLP_BATCH]
            loss, grads = _mlp_gradients(params, x[batch], y[batch])
            total += loss * len(batch)
            step += 1
            _adam(params, grads, moments, step)
        total /= len(y)
        if total > best * (1 - MLP_TOL):
            waited += 1
            if waited >= MLP_PATIENCE:
                break
        else:
            best, waited = total, 0
    return MlpWeights(*params)


def _mlp_gradients(params, x, y) -> tuple[float, list[np.ndarray]]:
    w1, b1, w2, b2 = params
    n = len(y)
    hidden = np.maximum(x @ w1 + b1, 0)
    z = hidden @ w2 + b2
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1)
    index = np.arange(n)
    decay = 0.5 * MLP_ALPHA * (np.sum(w1**2) + np.sum(w2**2)) / n
    loss = float(np.mean(np.log(total) - z[index, y]) + decay)
    g = e / total[:, None]
    g[index, y] -= 1.0
    g /= n
    gw2 = hidden.T @ g + MLP_ALPHA * w2 / n
    gh = (g @ w2.T) * (hidden > 0)
    gw1 = x.T @ gh + MLP_ALPHA * w1 / n
    return loss, [gw1, gh.sum(axis=0), gw2, g.sum(axis=0)]


def _adam(params, grads, moments, step, beta1=0.9, beta2=0.999, eps=1e-8) -> None:
    rate = MLP_RATE * np.sqrt(1 - beta2**step) / (1 - beta1**step)
    for p, g, (m, v) in zip(params, grads, moments, strict=True):
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        p -= rate * m / (np.sqrt(v) + eps)
