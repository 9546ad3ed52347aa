"""The prototype head (the default tagger): decisions that do not depend on class size,
cold start, the spread's shrinkage, and tagging against a concurrent writer."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.classifier.tagging.proto_head import ProtoHead, ProtoSettings, class_spread
from lookalike.classifier.tagging.tagger import (
    DEFAULT_HEAD,
    compute_tags,
    prepare,
    save_tags,
    tag_library,
    tag_vectors,
)
from lookalike.indexer.errors import LibraryBusy
from lookalike.indexer.store.library import Library
from tests.support.fakes import FakeEmbedder
from tests.support.vectors import clusters, write_vectors

SIZES = (600, 30, 30, 30, 30, 30, 40)  # class 0 is large; class 6 is never labelled


def long_tailed(seed: int = 0, dim: int = 32):
    """Synthetic classes of very different sizes, the last one never labelled."""
    x, y = clusters(len(SIZES), max(SIZES), dim=dim, seed=seed)
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate(SIZES)])
    return x[keep], y[keep]


def labelled(y, per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    known = [c for c in np.unique(y) if c != len(SIZES) - 1]
    return np.sort(
        np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, False) for c in known])
    )


def per_class_accuracy(per_class: int) -> tuple[dict[int, float], float]:
    x, y = long_tailed()
    seeds = labelled(y, per_class)
    rows, guesses, prediction, _ = tag_vectors(x, seeds, y[seeds].astype(str))
    tagged, _ = prediction.decide()
    truth = y[rows]
    right = tagged & (np.array(guesses) == truth.astype(str))
    accuracy = {int(c): float(right[truth == c].mean()) for c in np.unique(truth)}
    novel = truth == len(SIZES) - 1
    return accuracy, float((~tagged[novel]).mean())


def test_the_default_head_is_the_prototype_head():
    assert DEFAULT_HEAD == "proto"


def test_a_large_class_is_tagged_as_reliably_as_the_small_ones():
    accuracy, novel_unknown = per_class_accuracy(per_class=10)
    small = [accuracy[c] for c in range(1, len(SIZES) - 1)]
    assert accuracy[0] >= 0.9
    assert accuracy[0] >= min(small) - 0.05
    assert novel_unknown >= 0.8


@pytest.mark.parametrize("per_class", [1, 2, 3])
def test_a_few_labels_a_class_still_tag(per_class):
    accuracy, novel_unknown = per_class_accuracy(per_class)
    known = [accuracy[c] for c in range(len(SIZES) - 1)]
    assert np.mean(known) >= 0.5  # cold start: tags, not "unknown" everywhere
    assert novel_unknown >= 0.5


def test_closeness_does_not_grow_with_the_number_of_labels():
    x, y = clusters(2, 200, seed=4)
    x = prepare(x)
    means = []
    for n in (3, 30):
        seeds = np.concatenate([np.flatnonzero(y == c)[:n] for c in (0, 1)])
        head = ProtoHead(x)
        head.fit(seeds, y[seeds])
        rest = np.setdiff1d(np.flatnonzero(y == 0), seeds)
        means.append(float(np.median(head.score(rest).novelty)))
    # The z-score of a class's own images sits near 0 whatever the number of labels.
    assert all(abs(m) < 1.0 for m in means)


def test_a_class_with_one_label_takes_the_pooled_spread():
    rng = np.random.default_rng(0)
    xs = prepare(rng.random((11, 16)))
    yi = np.array([0] * 10 + [1])
    sums = np.zeros((2, 16))
    np.add.at(sums, yi, xs)
    counts = np.bincount(yi).astype(float)
    spread = class_spread(xs, yi, sums, counts, ProtoSettings(shrinkage=3.0))
    # Pooled: class 0's, the only class with a spread of its own.
    assert spread.mean[1] == pytest.approx(spread.mean[0])
    assert spread.sd[1] == pytest.approx(spread.sd[0])
    assert spread.sd[1] >= ProtoSettings().min_sd
    assert np.isfinite(spread.mean).all() and np.isfinite(spread.sd).all()


def make_library(root):
    info = FakeEmbedder().info
    x, y = long_tailed(dim=info.dim)
    with Library.create(root, info) as lib:
        ids = write_vectors(lib, x)
        seeds = labelled(y, 5)
        with lib.catalog.transaction() as conn:
            lib.catalog.set_labels(conn, [(ids[s], str(y[s])) for s in seeds], "manual")
    return ids


def test_tagging_during_an_index_run_fails_cleanly(tmp_path):
    make_library(tmp_path / "lib")
    with Library.open(tmp_path / "lib", readonly=False) as writer:
        writer.lock()  # an index run in progress
        with Library.open(tmp_path / "lib", readonly=False) as lib:
            with pytest.raises(LibraryBusy, match="another process is writing"):
                tag_library(lib)
            assert lib.catalog.tag_counts()[0] == 0  # nothing half-applied
        writer.unlock()
    with Library.open(tmp_path / "lib", readonly=False) as lib:
        run = tag_library(lib)
        assert lib.catalog.tag_counts()[0] == len(run.results) > 0


def test_a_snapshot_run_drops_the_tags_of_images_removed_meanwhile(tmp_path):
    ids = make_library(tmp_path / "lib")
    with Library.open(tmp_path / "lib", readonly=False) as lib:
        run = compute_tags(lib)
        removed = [r.id for r in run.results[:7]]
        with lib.catalog.transaction() as conn:
            lib.catalog.remove_images(conn, removed)
        save_tags(lib, run)
        assert lib.catalog.tag_counts()[0] == len(run.results) - len(removed)
    assert set(removed) <= set(ids)


def _class_around(centre: np.ndarray, n: int, noise: float, rng) -> np.ndarray:
    return centre + noise * rng.standard_normal((n, len(centre)))


def varied_library(seed: int = 0, dim: int = 32):
    """Prepared vectors of: known class 0 (a tight core, plus outlying images whose
    nearest images are the core), known classes 1-3, and a never-labelled class 4, a dense
    group close to class 1 (a near-synonym)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, dim))
    novel_centre = centres[1] + 0.9 * rng.standard_normal(dim)
    parts = [
        _class_around(centres[0], 300, 0.5, rng),
        centres[0] + 0.9 * rng.standard_normal((30, dim)),  # the outlying images of class 0
        _class_around(centres[1], 60, 0.5, rng),
        _class_around(centres[2], 60, 0.5, rng),
        _class_around(centres[3], 60, 0.5, rng),
        _class_around(novel_centre, 60, 0.5, rng),
    ]
    y = np.repeat([0, 0, 1, 2, 3, 4], [len(p) for p in parts])
    outlying = np.zeros(len(y), bool)
    outlying[300:330] = True
    return prepare(np.concatenate(parts)), y, outlying


def test_the_transductive_novelty_reaches_a_class_s_outlying_images():
    x, y, outlying = varied_library()
    rng = np.random.default_rng(1)
    core = np.flatnonzero((y < 4) & ~outlying)
    seeds = np.sort(np.concatenate([rng.choice(core[y[core] == c], 10, False) for c in range(4)]))
    heads = {k: ProtoHead(x, ProtoSettings(neighbours=k)) for k in (0, 10)}
    novelty = {}
    for k, head in heads.items():
        head.fit(seeds, y[seeds])
        novelty[k] = head.score(np.arange(len(y))).novelty
    novel = y == 4
    # Alone, the outlying images of class 0 look as far from its labels as the novel
    # group does from class 1's; among their own class, they come closer ...
    gain = np.median(novelty[10][outlying]) - np.median(novelty[0][outlying])
    assert gain > 1.0
    # ... while the novel group, among its own kind, gains nothing like it.
    novel_gain = np.median(novelty[10][novel]) - np.median(novelty[0][novel])
    assert novel_gain < gain / 2
    assert np.median(novelty[10][outlying]) > np.quantile(novelty[10][novel], 0.9)


def test_a_class_of_800_is_tagged_as_reliably_as_one_of_30():
    # 13 labelled classes: one of 810 images, twelve of 40; three of 60 never labelled.
    x, y = clusters(16, 810, seed=7)
    sizes = {0: 810, **{c: 40 for c in range(1, 13)}, **{c: 60 for c in (13, 14, 15)}}
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in sizes.items()])
    x, y = x[keep], y[keep]
    rng = np.random.default_rng(0)
    seeds = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(y == c), 10, False) for c in range(13)])
    )
    rows, guesses, prediction, _ = tag_vectors(x, seeds, y[seeds].astype(str))
    tagged, _ = prediction.decide()
    truth = y[rows]
    right = tagged & (np.array(guesses) == truth.astype(str))
    large = right[truth == 0].mean()
    small = min(right[truth == c].mean() for c in range(1, 13))
    assert large >= 0.9
    assert large >= small - 0.05
    assert (~tagged[truth >= 13]).mean() >= 0.8
