"""Near-duplicate groups: union-find, thresholds, bounded pairs, both index kinds."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.index_kinds import build_index
from lookalike.indexer.store.vector_index import IVF
from lookalike.search.duplicates import (
    DEFAULT_THRESHOLD,
    NEIGHBOURS,
    UnionFind,
    check_threshold,
    describe_groups,
    duplicate_groups,
    duplicate_pairs,
)
from tests.support.vectors import unit

DIM = 64

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def library_vectors(seed: int = 0):
    """Distinct vectors, plus near-copies of a few of them: (ids, vectors, true groups)."""
    rng = np.random.default_rng(seed)
    distinct = unit(rng.standard_normal((1500, DIM)))  # pairwise cosine ~N(0, 1/8)
    groups_src = {3: 1, 10: 2, 20: 5, 30: 40}  # original index -> number of copies
    rows, truth = [distinct], []
    next_id = len(distinct)
    for src, copies in groups_src.items():
        noisy = unit(distinct[src] + 0.05 * rng.standard_normal((copies, DIM)))  # cos ~0.93+
        rows.append(noisy)
        truth.append(sorted([src, *range(next_id, next_id + copies)]))
        next_id += copies
    vectors = np.concatenate(rows)
    return np.arange(len(vectors), dtype=np.int64), vectors, truth


def test_union_find_components_largest_first():
    uf = UnionFind()
    for a, b in [(1, 2), (3, 4), (4, 5), (9, 9), (2, 1)]:
        uf.union(a, b)
    assert uf.groups() == [[3, 4, 5], [1, 2]]


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan")])
def test_threshold_outside_zero_one_is_refused(bad):
    with pytest.raises(BadQuery, match=r"\(0, 1\]"):
        check_threshold(bad)
    index = build_index(np.arange(3), unit(np.eye(3, DIM)))
    with pytest.raises(BadQuery):
        duplicate_groups(index, bad)


def test_groups_found_exactly_with_the_flat_index():
    ids, vectors, truth = library_vectors()
    index = build_index(ids, vectors)
    groups = duplicate_groups(index, 0.85)
    # the 41-image group is larger than NEIGHBOURS and still comes out whole
    assert 40 + 1 > NEIGHBOURS
    assert groups == sorted(truth, key=lambda g: (-len(g), g[0]))
    assert duplicate_groups(index, 0.999) == []


def test_groups_found_with_the_ivf_index(monkeypatch):
    monkeypatch.setattr(vi, "FLAT_MAX", 1000)
    ids, vectors, truth = library_vectors(seed=1)
    index = build_index(ids, vectors)
    assert index.kind == IVF
    assert duplicate_groups(index, 0.85) == sorted(truth, key=lambda g: (-len(g), g[0]))


def test_pairs_per_batch_are_bounded_not_quadratic():
    # 600 copies of one image: a range search would return 360,000 pairs at once
    same = unit(np.ones((600, DIM)) + 1e-4 * np.random.default_rng(2).standard_normal((600, DIM)))
    index = build_index(np.arange(600), same)
    sizes = [len(a) for a, _b in duplicate_pairs(index, 0.9, neighbours=8, batch=100)]
    assert max(sizes) <= 100 * (8 + 1)  # k + 1 looked up, itself dropped when found
    assert duplicate_groups(index, 0.9, neighbours=8) == [list(range(600))]


def test_described_groups_carry_paths_and_scores():
    ids, vectors, truth = library_vectors()
    index = build_index(ids, vectors)
    paths = {int(i): f"/photos/{i}.jpg" for i in ids if i != truth[-1][1]}  # one was deleted
    groups = describe_groups(index, duplicate_groups(index, 0.85), paths)
    assert [g.size for g in groups] == [40, 6, 3, 2]  # largest first, deleted one left out
    first = groups[0].members[0]
    assert first.score == 1.0 and first.path == f"/photos/{first.id}.jpg"
    assert all(0.85 <= m.score <= 1.0 for g in groups for m in g.members)


def test_cli_help_states_the_default_thresholds():
    from click.testing import CliRunner

    from lookalike.cli import main
    from lookalike.search.copy_groups import DEFAULT_CANDIDATE_THRESHOLD

    out = " ".join(CliRunner().invoke(main, ["duplicates", "--help"]).output.split())
    assert f"default: {DEFAULT_CANDIDATE_THRESHOLD:g};" in out
    assert f"--look-alikes the grouping threshold, default {DEFAULT_THRESHOLD:g}" in out
