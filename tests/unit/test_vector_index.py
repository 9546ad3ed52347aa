"""The index kinds: choice by size, IVF accuracy, ids, files, and library rebuilds."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.index_kinds import build_index, read_index
from lookalike.indexer.store.library import Library
from lookalike.indexer.store.vector_index import FLAT, IVF, IvfParams, choose_kind
from tests.support.vectors import fake_model, unit, write_vectors

DIM = 64

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


INFO = fake_model(DIM)


def clustered(n: int, seed: int = 0, centres: int = 60) -> np.ndarray:
    """Vectors around shared centres: neighbours that an ANN index can find."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM))
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal((n, DIM))
    return unit(x)


def exact_top(base_ids, base, queries, k):
    order = np.argsort(-(queries @ base.T), axis=1)[:, :k]
    return base_ids[order]


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])


@pytest.fixture
def small_limits(monkeypatch):
    """Thresholds scaled down so that a few thousand vectors make an IVF library."""
    monkeypatch.setattr(vi, "FLAT_MAX", 1000)
    monkeypatch.setattr(vi, "FLAT_BACK", 500)


def test_kind_follows_size_with_hysteresis():
    assert choose_kind(10) == FLAT
    assert choose_kind(vi.FLAT_MAX) == FLAT
    assert choose_kind(vi.FLAT_MAX + 1) == IVF
    between = (vi.FLAT_MAX + vi.FLAT_BACK) // 2
    assert choose_kind(between, FLAT) == FLAT
    assert choose_kind(between, IVF) == IVF  # no flip-flop around the limit
    assert choose_kind(vi.FLAT_BACK - 1, IVF) == FLAT


def test_ivf_params_grow_with_size():
    small, large = IvfParams.for_size(200_000, 1280), IvfParams.for_size(1_000_000, 1280)
    assert small.nlist < large.nlist == 1024
    assert 2 <= large.nprobe < small.nprobe <= small.nlist  # ~2,000 vectors scanned either way
    assert large.train_size(1_000_000) <= vi.TRAIN_MAX
    assert small.train_size(5_000) == 5_000


def test_flat_index_round_trip_and_remove(tmp_path):
    x = clustered(300)
    ids = np.arange(300, dtype=np.int64) * 7 + 3
    index = build_index(ids, x)
    assert index.kind == FLAT
    scores, found = index.search(x[:5], 3)
    assert list(found[:, 0]) == list(ids[:5]) and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert index.remove(ids[:5]) == 5 and index.ntotal == 295
    assert not set(ids[:5]) & set(index.search(x[:5], 10)[1].ravel())
    index.save(tmp_path / "i.faiss")
    again = read_index(tmp_path / "i.faiss")
    assert again.kind == FLAT and sorted(again.ids()) == sorted(ids[5:])
    assert np.allclose(again.reconstruct(ids[[10, 20]]), x[[10, 20]])


def test_ivf_recall_ids_and_changes(tmp_path, small_limits):
    x, queries = np.split(clustered(4200, seed=1), [4000])  # queries near the same centres
    ids = np.arange(4000, dtype=np.int64) * 3 + 11  # catalog ids, not positions
    index = build_index(ids, x)
    assert index.kind == IVF and index.ntotal == 4000
    _s, found = index.search(queries, 10)
    assert recall(found, exact_top(ids, x, queries, 10)) >= 0.9
    # scores are cosine similarities: exact near the k-th place, SQ8 (~1e-3) above it
    scores, found = index.search(queries[:50], 10)
    exact = np.einsum("qd,qkd->qk", queries[:50], x[(found - 11) // 3])
    assert np.abs(scores - exact).max() < 5e-3
    assert np.isclose(scores, exact, rtol=0, atol=1e-6).sum(axis=1).min() >= 1  # the k-th
    assert (np.diff(scores, axis=1) <= 0).all()
    scores, found = index.search(x[:20], 1)
    assert list(found[:, 0]) == list(ids[:20]) and np.allclose(scores[:, 0], 1.0, atol=5e-3)

    # the indexer's update: remove changed ids, add them back with new vectors
    changed = ids[:50]
    assert index.remove(changed) == 50 and index.ntotal == 3950
    assert not set(changed) & set(index.search(x[:50], 5)[1].ravel())
    assert not set(changed) & set(index.ids())
    moved = clustered(4250, seed=1)[4200:]  # new photos, from the same world
    index.add(changed, moved)
    _s, found = index.search(moved, 1)
    assert list(found[:, 0]) == list(changed)

    index.save(tmp_path / "i.faiss")
    sq8_only = read_index(tmp_path / "i.faiss")  # no exact vectors: SQ8 scores
    assert sq8_only.kind == IVF and sq8_only.params == index.params
    s8, f8 = sq8_only.search(queries, 10)
    exact8 = np.einsum("qd,qkd->qk", queries, index.reconstruct(f8.ravel()).reshape(200, 10, -1))
    assert np.abs(s8 - exact8).max() < 0.02 and not np.allclose(s8, exact8, atol=1e-6)
    again = read_index(tmp_path / "i.faiss", source=index.source)
    assert np.array_equal(again.search(queries, 10)[1], index.search(queries, 10)[1])
    seen = np.concatenate([i for i, _v in again.iter_vectors(batch=999)])
    assert sorted(seen) == sorted(ids)
    assert again.memory_bytes() < 4000 * DIM * 4  # smaller than the float32 vectors


@pytest.mark.parametrize("quantizer", [vi.SQ8, vi.SQ8_UNIFORM])
def test_one_query_and_many_agree_for_each_quantizer(tmp_path, quantizer):
    from dataclasses import replace

    from lookalike.indexer.store.ivf_index import IvfIndex, KeptVectors

    x, queries = np.split(clustered(3030, seed=2), [3000])
    ids = np.arange(3000, dtype=np.int64) + 1
    params = replace(IvfParams.for_size(3000, DIM), quantizer=quantizer)
    index = IvfIndex.train_new(x, params)
    index.attach(KeptVectors())
    index.add(ids, x)
    batch_scores, batch_ids = index.search(queries, 10)
    for q, scores, found in zip(queries, batch_scores, batch_ids, strict=True):
        one_scores, one_ids = index.search(q, 10)  # the single-query path
        assert one_ids[0].tolist() == found.tolist()
        np.testing.assert_allclose(one_scores[0], scores, atol=1e-6)
    assert recall(batch_ids, exact_top(ids, x, queries, 10)) >= 0.9
    index.save(tmp_path / "i.faiss")
    assert read_index(tmp_path / "i.faiss").params.quantizer == quantizer
    # A header written before the quantizer was recorded means the per-dimension SQ8.
    old = IvfParams.from_json('{"nlist": 64, "nprobe": 2, "rerank": 20, "trained_n": 9}')
    assert old.quantizer == vi.SQ8


def test_ivf_asks_for_retraining_when_grown_or_shrunk(small_limits):
    index = build_index(np.arange(2000), clustered(2000))
    assert index.params.trained_n == 2000
    assert not index.needs_rebuild(2000 * 3)
    assert index.needs_rebuild(2000 * 5)
    assert index.needs_rebuild(400)  # below FLAT_BACK: back to exact search
    assert not index.needs_rebuild(700)


def _library(tmp_path, vectors, start=0):
    lib = Library.create(tmp_path / "lib", INFO)
    _write(lib, vectors, start)
    return lib


def _write(lib, vectors, start=0):
    return write_vectors(lib, vectors, start)


def test_library_switches_kind_and_retrains_with_stable_ids(tmp_path, small_limits):
    x = clustered(6000, seed=4)
    lib = _library(tmp_path, x[:800])
    assert lib.sync_index().kind == FLAT
    first_ids = _write(lib, x[800:1500], start=800)
    index = lib.sync_index()  # past FLAT_MAX: rebuilt as IVF from the catalog
    assert index.kind == IVF and index.ntotal == 1500
    assert lib.catalog.get_meta("index_kind") == IVF
    assert index.params.trained_n == 1500
    assert [p.name for p in lib.root.glob("index-*.faiss")] == [lib.index_path().name]
    # ids are the catalog's: an image found by its vector comes back with its id
    _s, found = lib.load_index().search(x[800:810], 1)
    assert list(found[:, 0]) == first_ids[:10]

    _write(lib, x[1500:3000], start=1500)  # 2x: kept, changes applied
    index = lib.sync_index()
    assert index.params.trained_n == 1500 and index.ntotal == 3000
    _write(lib, x[3000:6000], start=3000)  # 4x the training size: retrained
    index = lib.sync_index()
    assert index.params.trained_n == 6000 and index.ntotal == 6000

    # readers see pending changes applied in memory, before any sync
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, list(range(1, 5601)))
    live = lib.live_index()
    assert live.ntotal == 400 and live.kind == IVF
    assert lib.sync_index().kind == FLAT  # below FLAT_BACK: exact search again
    assert sorted(lib.load_index().ids()) == list(range(5601, 6001))
    lib.close()


def test_rebuild_repairs_a_lost_index_file(tmp_path, small_limits):
    lib = _library(tmp_path, clustered(1200, seed=5))
    lib.sync_index()
    lib.index_path().unlink()
    index = lib.rebuild_index()
    assert index.kind == IVF and index.ntotal == 1200
    assert lib.load_index().ntotal == 1200 and not lib.catalog.pending_index()
    lib.close()
