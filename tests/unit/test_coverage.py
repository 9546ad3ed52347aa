"""Coverage of the labels on the unlabelled library (classifier.tagging.coverage)."""

from __future__ import annotations

import numpy as np

from lookalike.classifier.tagging.coverage import coverage_of
from tests.support.vectors import clusters


def test_an_under_tagged_class_comes_first_with_its_unknown_images():
    x, y = clusters(3, 200, spread=0.15, seed=1)
    keep = np.concatenate([np.flatnonzero(y == 0)] + [np.flatnonzero(y == c)[:30] for c in (1, 2)])
    x, y = x[keep], y[keep]
    names = {0: "large", 1: "small", 2: "other"}
    labels: dict[int, str] = {}
    for c in (0, 1, 2):
        labels.update({int(r): names[c] for r in np.flatnonzero(y == c)[:5]})
    # The large class got 10 tags, the small ones all theirs: the rest of the large
    # class is unknown, and lies nearest to its label.
    tags = {int(r): "large" for r in np.flatnonzero(y == 0)[5:15]}
    for c in (1, 2):
        tags.update({int(r): names[c] for r in np.flatnonzero(y == c)[5:]})
    coverage = coverage_of(x, labels, tags, tagged_at=1.0)
    first = coverage.labels[0]
    assert first.label == "large"
    assert (first.human, first.tagged, first.unknown_nearest) == (5, 10, 185)
    assert first.unknown_share == 185 / 200
    assert {c.label: c.unknown_nearest for c in coverage.labels[1:]} == {"small": 0, "other": 0}
    assert coverage.unknown == 185 and coverage.images == len(x)
    doc = coverage.to_json()
    assert doc["labels"][0] == {"label": "large", "human": 5, "tagged": 10, "unknown_nearest": 185}
    assert doc["tagged_at"] == 1.0


def test_without_a_tag_run_every_unlabelled_image_is_unknown():
    x, y = clusters(2, 20, spread=0.15, seed=2)
    labels = {0: "a", 1: "a", 20: "b"}
    coverage = coverage_of(x, labels, {})
    assert coverage.tagged_at is None
    assert coverage.unknown == 37
    assert sum(c.unknown_nearest for c in coverage.labels) == 37
    assert {c.label: c.unknown_nearest for c in coverage.labels} == {"a": 18, "b": 19}


def test_no_labels_no_rows():
    x, _ = clusters(2, 5, seed=3)
    coverage = coverage_of(x, {}, {})
    assert coverage.labels == [] and coverage.unknown == 10
