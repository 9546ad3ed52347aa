"""The tagger's algorithm on synthetic clusters: classes, "unknown", calibration, heads."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.classifier.tagging.calibration import (
    Calibrator,
    Scores,
    SimulationSettings,
    expected_calibration_error,
    logistic_fit,
    reliability,
    simulate,
)
from lookalike.classifier.tagging.heads import make_inductive_head
from lookalike.classifier.tagging.tagger import (
    Graph,
    KnnHead,
    NotEnoughLabels,
    Prediction,
    Tagger,
    prepare,
    tag_vectors,
)
from tests.support.vectors import clusters


def labelled_split(y, known_classes, per_class, seed=0):
    rng = np.random.default_rng(seed)
    return np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in known_classes]
        )
    )


def test_prepare_gives_unit_vectors_for_any_sign():
    rng = np.random.default_rng(1)
    for x in (rng.random((50, 8)), rng.normal(size=(50, 8))):
        out = prepare(x)
        assert out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert prepare(np.zeros((0, 8))).shape == (0, 8)


def test_propagation_stays_in_the_seeded_cluster():
    x, y = clusters(2, 20, spread=0.05)
    x[y == 1] = -x[y == 1]  # make the clusters far apart: no edges between them
    graph = Graph.build(prepare(x))
    sources = np.zeros((len(x), 1))
    sources[0] = 1.0
    mass = graph.propagate(sources)[:, 0]
    assert mass[y == 0].min() > 0
    assert mass[y == 1].max() < 1e-9 * mass[y == 0].min()


def test_known_classes_tagged_and_novel_ones_unknown():
    x, y = clusters(8, 30)
    known = np.arange(6)  # classes 6 and 7 are never labelled
    seeds = labelled_split(y, known, 5)
    rows, guesses, prediction, tagger = tag_vectors(x, seeds, [str(c) for c in y[seeds]])
    tagged, confidence = prediction.decide()
    truth = y[rows]
    is_known = np.isin(truth, known)
    right = tagged & (np.array(guesses) == truth.astype(str))
    assert right[is_known].mean() >= 0.9
    assert (~tagged[~is_known]).mean() >= 0.8
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert not tagger.calibrator.fallback
    assert set(rows).isdisjoint(seeds)


def test_tagging_is_reproducible():
    x, y = clusters(5, 20)
    seeds = labelled_split(y, range(4), 4)
    a = tag_vectors(x, seeds, y[seeds].astype(str), seed=3)[2]
    b = tag_vectors(x, seeds, y[seeds].astype(str), seed=3)[2]
    np.testing.assert_array_equal(a.confidence, b.confidence)


def test_fewer_than_two_classes_is_an_error():
    x, y = clusters(3, 10)
    with pytest.raises(NotEnoughLabels, match="at least two classes"):
        tag_vectors(x, np.array([0, 1]), ["a", "a"])
    with pytest.raises(NotEnoughLabels, match="no images"):
        tag_vectors(np.zeros((0, 8)), np.array([], dtype=int), [])


def test_one_label_per_class_falls_back_to_default_calibration():
    x, y = clusters(4, 10)
    seeds = labelled_split(y, range(4), 1)
    _rows, _guesses, prediction, tagger = tag_vectors(x, seeds, y[seeds].astype(str))
    assert tagger.calibrator.fallback
    assert np.isfinite(prediction.confidence).all()


def test_decide_answers_the_most_probable_outcome():
    pred = Prediction(
        pred=np.array([0, 1, 2, 3]),
        p_known=np.array([0.95, 0.3, 0.9, 0.9]),
        confidence=np.array([0.9, 0.25, 0.05, 0.4]),
    )
    tagged, conf = pred.decide(0.0)
    # 1: P(novel) 0.7 beats the tag's 0.25; 2: P(novel) 0.1 beats the tag's 0.05.
    assert tagged.tolist() == [True, False, False, True]
    np.testing.assert_allclose(conf, [0.9, 0.7, 0.1, 0.4])
    tagged, _ = pred.decide(0.5)
    assert tagged.tolist() == [True, False, False, False]


def test_simulation_hides_classes_and_images():
    x, y = clusters(6, 12)
    seeds = labelled_split(y, range(6), 6)
    head = KnnHead(prepare(x))

    def fit_score(keep, y_keep, hidden):
        assert set(keep).isdisjoint(hidden)
        head.fit(keep, y_keep)
        return head.score(hidden)

    rows = simulate(fit_score, seeds, y[seeds], SimulationSettings(min_rounds=6, max_rounds=6))
    assert rows.novel.any() and (~rows.novel).any()
    assert not (rows.right & rows.novel).any()
    # Hidden images of kept classes are mostly classified right on clean clusters.
    assert rows.right[~rows.novel].mean() > 0.8


def test_prior_adapts_to_the_share_of_known_images():
    cal = Calibrator(known=(0.0, 3.0), right=(5.0, 0.0, 0.0))
    rng = np.random.default_rng(0)
    novelty = np.concatenate([rng.normal(1.5, 0.5, 800), rng.normal(-1.5, 0.5, 200)])
    scores = Scores(np.zeros(1000, dtype=int), novelty, np.ones(1000))
    assert cal.adapt_prior(scores) == pytest.approx(0.8, abs=0.03)


def test_logistic_fit_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    a = rng.normal(size=4000)
    target = rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2.0 * a)))
    intercept, slope = logistic_fit([a], target, np.ones(4000), strength=0.01)
    assert intercept == pytest.approx(0.5, abs=0.15)
    assert slope == pytest.approx(2.0, abs=0.2)
    # Perfectly separated rows: the prior keeps the coefficients finite and near it.
    separated = logistic_fit([a], a > 0, np.ones(4000), prior=(0.0, 3.0))
    assert 3.0 < separated[1] < 100.0 and abs(separated[0]) < 5.0
    few = logistic_fit([a[:3]], np.array([True, False, True]), np.ones(3), prior=(1.0, 2.0))
    assert few == pytest.approx((1.0, 2.0), abs=1.0)


def test_calibration_error_and_reliability():
    conf = np.array([0.9] * 10 + [0.2] * 10)
    right = np.array([True] * 9 + [False] + [True] * 2 + [False] * 8)
    assert expected_calibration_error(conf, right) == pytest.approx(0.0)
    assert expected_calibration_error(np.ones(4), np.zeros(4, bool)) == pytest.approx(1.0)
    bins = reliability(conf, right, bins=5)
    assert [b["count"] for b in bins] == [0, 10, 0, 0, 10]


@pytest.mark.parametrize("name", ["linear", "svm", "mlp"])
def test_other_heads_share_the_interface(name):
    x, y = clusters(4, 15)
    xp = prepare(x)
    seeds = labelled_split(y, range(4), 5)
    head = make_inductive_head(name, xp)
    head.fit(seeds, y[seeds])
    rest = np.setdiff1d(np.arange(len(x)), seeds)
    scores = head.score(rest)
    assert scores.pred.shape == scores.novelty.shape == scores.agreement.shape == (len(rest),)
    assert (scores.pred == y[rest]).mean() >= 0.9
    assert ((scores.agreement >= 0) & (scores.agreement <= 1)).all()
    # Two classes (binary decision functions) and one class (a calibration round).
    two = seeds[y[seeds] < 2]
    head.fit(two, y[two])
    assert set(head.score(rest).pred) <= {0, 1}
    one = seeds[y[seeds] == 3]
    head.fit(one, y[one])
    assert set(head.score(rest).pred) == {3}


def test_inductive_head_tags_with_unknown_too():
    x, y = clusters(7, 25)
    seeds = labelled_split(y, range(5), 6)
    tagger = Tagger(make_inductive_head("linear", prepare(x)))
    tagger.fit(seeds, y[seeds])
    rest = np.setdiff1d(np.arange(len(x)), seeds)
    tagged, _ = tagger.predict(rest).decide()
    assert (~tagged[y[rest] >= 5]).mean() >= 0.5


class _FakeClip:
    """Text vectors that point at the image vectors of the same name (a stand-in CLIP)."""

    logit_scale = 100.0

    def __init__(self, vocabulary: dict[str, np.ndarray]) -> None:
        from lookalike.indexer.models.protocol import ModelInfo

        self.vocabulary = vocabulary
        self.info = ModelInfo("openclip:ViT-B-32:fake", 4, "clip", "", text_encoder=True)

    def embed_text(self, texts):
        return np.stack([self.vocabulary[t.split()[-1].rstrip(".")] for t in texts])


def test_zero_shot_suggestions_over_label_names_with_the_librarys_weights(tmp_path, monkeypatch):
    from lookalike.classifier.tagging import suggestions
    from lookalike.indexer.models.protocol import ModelInfo
    from lookalike.indexer.store.catalog import Catalog, NewImage
    from lookalike.indexer.store.library import Library

    directions = {"cat": np.eye(4)[0], "dog": np.eye(4)[1], "owl": np.eye(4)[2]}
    info = ModelInfo(
        "openclip:ViT-B-32", 4, "clip", "abc", extra={"weights": "/models/tiny.pt"},
        text_encoder=True,
    )  # fmt: skip
    cat = Catalog(tmp_path / "catalog.sqlite")
    items = [
        NewImage(f"/p/{name}{i}.jpg", 1, 1, f"{name}{i}", 4, 4, v + 0.1 * i, None)
        for name, v in directions.items()
        for i in range(2)
    ]
    with cat.transaction() as conn:
        ids = cat.write_images(conn, items)
        cat.set_labels(conn, [(ids[0], "cat"), (ids[2], "dog")], "manual")
        cat.set_meta("model", info.to_json(), conn)
    loaded = []

    def load_embedder(spec, **options):
        loaded.append((spec, options))
        return _FakeClip(directions.copy())

    # The registry's loader, under load_embedder_for: the library's recorded model.
    monkeypatch.setattr("lookalike.indexer.models.registry.load_embedder", load_embedder)
    with Library(tmp_path, cat) as library:
        found = suggestions.suggest(library, top=2)
    assert loaded == [("openclip:ViT-B-32", {"device": "cpu", "weights": "/models/tiny.pt"})]
    assert found.source == "clip-zero-shot:labels"
    assert set(found.suggestions) == set(ids) - {ids[0], ids[2]}
    assert found.suggestions[ids[1]][0].label == "cat"
    assert found.suggestions[ids[3]][0].label == "dog"
    assert all(len(s) == 2 for s in found.suggestions.values())


def test_imagenet_suggestions_need_stored_predictions(tmp_path):
    from lookalike.classifier.tagging.suggestions import imagenet
    from lookalike.indexer.errors import LookalikeError
    from lookalike.indexer.store.catalog import Catalog, NewImage
    from lookalike.indexer.store.library import Library

    cat = Catalog(tmp_path / "catalog.sqlite")
    top = [("tabby", 0.6), ("tiger cat", 0.2), ("lynx", 0.1), ("fox", 0.05), ("dog", 0.01)]
    with cat.transaction() as conn:
        ids = cat.write_images(
            conn,
            [
                NewImage("/a.jpg", 1, 1, "a", 4, 4, np.ones(4), top),
                NewImage("/b.jpg", 1, 1, "b", 4, 4, np.ones(4), None),
            ],
        )
    with Library(tmp_path, cat) as library:
        found = imagenet(library, ids, top=3)
        assert found.suggestions == {ids[0]: [("tabby", 0.6), ("tiger cat", 0.2), ("lynx", 0.1)]}
        with pytest.raises(LookalikeError, match="no class scores"):
            imagenet(library, [ids[1]])
