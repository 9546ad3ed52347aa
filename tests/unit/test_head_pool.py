"""The heads of an evaluation in several processes: the same figures as in one, progress
from every head, and a worker's error raised in the caller."""

from __future__ import annotations

import threading
from functools import partial

import numpy as np
import pytest

from lookalike.classifier.tagging.head_pool import run_groups, split
from lookalike.classifier.tagging.validation import evaluate_heads, evaluate_vectors
from tests.support.vectors import clusters


def test_split_balances_cost_and_keeps_order():
    cost = {"proto": 1, "knn": 4, "linear": 3, "svm": 6, "mlp": 8}
    groups = split(list(cost), cost.__getitem__, 2)
    assert sorted(h for g in groups for h in g) == sorted(cost)
    loads = [sum(cost[h] for h in g) for g in groups]
    assert max(loads) - min(loads) <= 1
    order = list(cost)
    for g in groups:
        assert g == sorted(g, key=order.index)
    assert split(["knn"], cost.__getitem__, 2) == [["knn"]]
    assert split(list(cost), cost.__getitem__, 1) == [order]


def _labelled():
    x, y = clusters(4, 20, dim=24, spread=1.0, seed=3)
    seeds = np.arange(0, len(y), 2)
    return x, seeds, [f"c{c}" for c in y[seeds]]


def _without_times(evaluation):
    doc = evaluation.to_json()
    for h in doc["heads"].values():
        del h["seconds"], h["cpu_seconds"]
    return doc


def test_two_processes_give_the_figures_of_one():
    x, seeds, labels = _labelled()
    heads = ("proto", "knn", "linear", "svm")
    seen: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def progress(head, step):
        with lock:
            seen.append((head, step, threading.current_thread().name))

    one = evaluate_vectors(x, seeds, labels, heads=heads, folds=3, curve=(1, 2), workers=1)
    two = evaluate_vectors(
        x, seeds, labels, heads=heads, folds=3, curve=(1, 2), workers=2, progress=progress
    )
    assert _without_times(two) == _without_times(one)
    assert list(two.heads) == list(heads)
    # Every head reports its start and its folds, numbered in the order asked for,
    # and some from the thread that forwards the worker's messages.
    for number, head in enumerate(heads, 1):
        steps = [s for h, s, _ in seen if h == head]
        assert steps[0] == "starting"
        assert f"cross-validation fold 3 of 3 (head {number} of 4)" in steps
        assert f"open-set round 1 of 3 (head {number} of 4)" in steps
    assert len({t for *_, t in seen}) == 2


def test_an_error_in_a_worker_is_raised_here():
    x, seeds, labels = _labelled()
    y = np.unique(labels, return_inverse=True)[1]
    fold = np.arange(len(y)) % 3
    job = partial(
        evaluate_heads, seeds=seeds, y=y, fold=fold, folds=3, n_classes=4, curve=(1,), seed=0
    )
    with pytest.raises(KeyError, match="no-such-head"):
        run_groups(job, x, [["proto"], ["no-such-head"]], lambda head, step: None)
