"""Cross-validation, metrics, open-set AUROC and the HTML report, on synthetic clusters."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from lookalike.classifier.tagging.report import render_html
from lookalike.classifier.tagging.validation import (
    ConfusedPair,
    StoredEvaluation,
    assign_folds,
    auroc,
    classification_metrics,
    evaluate_vectors,
)
from tests.support.vectors import clusters


def test_folds_are_stratified_and_small_classes_noted():
    y = np.array([0] * 10 + [1] * 3 + [2])
    fold, notes = assign_folds(y, 5, np.random.default_rng(0))
    for f in range(5):
        assert (y[fold == f] == 0).sum() == 2
    assert sorted(fold[y == 1]) == sorted(set(fold[y == 1]))  # three different folds
    assert fold[y == 2].tolist() == [-1]
    assert [n.cls for n in notes] == [1, 2]
    assert "tested in 3 of 5 folds" in notes[0].note
    assert "training only" in notes[1].note


def test_auroc_matches_the_rank_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 200), rng.normal(0, 1, 150)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(pos, neg) == pytest.approx(pairs)
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == pytest.approx(0.5)
    assert auroc(np.array([]), neg) is None


def test_classification_metrics_by_hand():
    truth = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 1])
    m = classification_metrics(truth, pred, 3, rows=np.arange(6))
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.confusion == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    c0, c1, c2 = m.per_class
    assert (c0.precision, c0.recall) == (1.0, pytest.approx(2 / 3))
    assert (c1.precision, c1.recall) == (0.5, 1.0)
    assert (c2.precision, c2.recall, c2.support) == (0.0, 0.0, 1)
    f1 = [0.8, 2 / 3, 0.0]
    assert m.macro_f1 == pytest.approx(np.mean(f1))
    assert m.confused_pairs[0] == ConfusedPair(true=0, predicted=1, count=1, examples=[2])
    assert len(m.confused_pairs) == 2


def test_evaluate_needs_something_to_hold_out():
    from lookalike.indexer.errors import LookalikeError

    x, _ = clusters(3, 4)
    with pytest.raises(LookalikeError, match="single label"):
        evaluate_vectors(x, np.array([0, 4, 8]), ["a", "b", "c"], heads=("knn",))


@pytest.fixture(scope="module")
def evaluation():
    x, y = clusters(5, 24, dim=24, spread=1.0, seed=2)  # overlapping a little
    rng = np.random.default_rng(0)
    seeds = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), n, replace=False) for c, n in enumerate([12] * 4 + [3])]
    )
    labels = [f"class{c}" for c in y[seeds]]
    return evaluate_vectors(x, seeds, labels, heads=("knn", "linear"), folds=4, curve=(1, 2, 5, 20))


def test_evaluate_reports_every_head(evaluation):
    assert evaluation.classes == [f"class{c}" for c in range(5)]
    assert [evaluation.classes[n.cls] for n in evaluation.notes] == ["class4"]
    assert set(evaluation.heads) == {"knn", "linear"}
    for r in evaluation.heads.values():
        assert r.tested == 51
        assert 0.85 <= r.accuracy < 1.0  # some confusion, for the report
        assert r.confused_pairs
        assert 0 <= r.macro_f1 <= 1
        assert np.array(r.confusion).sum() == 51
        curve = r.learning_curve
        # 20 per class is more than any class has in training: the curve stops at 5.
        assert [p.labels_per_class for p in curve] == [1, 2, 5]
        assert curve[-1].accuracy > curve[0].accuracy
        o = r.open_set
        assert o.auroc is not None and o.auroc > 0.75
        assert o.known_accuracy is not None and 0 <= o.known_accuracy <= 1
        assert o.novel_unknown is not None and 0 <= o.novel_unknown <= 1
        assert sum(b["count"] for b in o.reliability) == o.known_images + o.novel_images
    assert evaluation.best_head in evaluation.heads


def test_evaluation_json_and_stored_summary_round_trip(evaluation):
    doc = json.loads(json.dumps(evaluation.to_json()))
    assert list(doc) == ["classes", "labels", "images", "folds", "notes", "heads", "best_head"]
    assert doc["notes"] == [{"class": "class4", "labels": 3, "note": evaluation.notes[0].note}]
    knn = doc["heads"]["knn"]
    assert list(knn) == [
        "tested", "accuracy", "macro_f1", "per_class", "confusion", "confused_pairs",
        "learning_curve", "open_set", "seconds", "cpu_seconds",
    ]  # fmt: skip
    assert set(knn["per_class"][0]) == {"class", "precision", "recall", "f1", "support"}
    assert set(knn["learning_curve"][0]) == {"labels_per_class", "accuracy", "classes_with_fewer"}
    assert "reliability" in knn["open_set"] and "skipped" not in knn["open_set"]
    summary = evaluation.summary(at=12.5)
    stored = json.loads(json.dumps(summary.to_json()))
    assert "reliability" not in stored["heads"]["knn"]["open_set"]
    assert StoredEvaluation.from_json(stored) == summary
    assert summary.heads["knn"].open_set.auroc == evaluation.heads["knn"].open_set.auroc


def test_report_is_self_contained(evaluation):
    evaluation = replace(evaluation, library="/lib", paths={})
    calls = []

    def thumb(path):
        calls.append(path)
        return "data:image/jpeg;base64,AAAA"

    page = render_html(evaluation, thumbnail=thumb)
    assert len(calls) == sum(
        len(p.examples) for r in evaluation.heads.values() for p in r.confused_pairs
    )
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert len(re.findall(r"src='data:image/svg\+xml;base64,", page)) >= 4
    assert not re.search(r"(src|href)=['\"](http|/|\.)", page)
    assert "name='viewport' content='width=device-width" in page  # readable on a phone
    assert "Logistic regression" in page and "kNN" in page
    pairs = sum(len(r.confused_pairs) for r in evaluation.heads.values())
    assert pairs and page.count("taken for") == pairs
    assert page.count("data:image/jpeg;base64,AAAA") == len(calls)
