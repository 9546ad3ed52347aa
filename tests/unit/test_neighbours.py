"""All-points nearest neighbours for the tagging and clustering graphs (classifier.neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.classifier.neighbours import knn
from lookalike.classifier.tagging.knn_head import Graph
from tests.support.vectors import unit

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.4 * rng.standard_normal((n, dim))
    return unit(x)


def test_past_the_exact_size_an_ivf_finds_nearly_the_same_neighbours(monkeypatch):
    import faiss

    made = []
    ivf = faiss.IndexIVFFlat
    monkeypatch.setattr(faiss, "IndexIVFFlat", lambda *args: made.append(args) or ivf(*args))
    x = _clustered(3000)
    exact_sims, exact = knn(x, 6)  # 3,000 <= EXACT_MAX: exact
    assert not made
    approx_sims, approx = knn(x, 6, exact_max=1000)  # an IVF of ~54 lists
    assert len(made) == 1
    assert (exact[:, 0] == np.arange(3000)).mean() > 0.99  # each row finds itself first
    recall = np.mean([len(set(a) & set(e)) / 6 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9
    np.testing.assert_allclose(exact_sims, np.einsum("nd,nkd->nk", x, x[exact]), atol=1e-5)
    assert (approx_sims <= exact_sims[:, :1] + 1e-5).all()


def test_the_tagging_graph_uses_it(monkeypatch):
    from lookalike.classifier import neighbours
    from lookalike.classifier.tagging import knn_head

    x = _clustered(600, seed=1)
    monkeypatch.setattr(neighbours, "EXACT_MAX", 100)
    calls = []
    original = neighbours.knn

    def spy(*args, **kwargs):
        calls.append(kwargs.get("exact_max") or neighbours.EXACT_MAX)
        return original(*args, **kwargs)

    monkeypatch.setattr(knn_head, "knn", spy)  # the name knn_head calls
    graph = Graph.build(x)
    assert calls == [100] and graph.matrix.shape == (600, 600)
    assert np.allclose(graph.matrix.toarray(), graph.matrix.toarray().T)  # symmetric
