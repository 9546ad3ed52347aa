"""Library._updated: changed vectors are read in bounded chunks, with the same result."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.store import library as library_module
from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.library import Library
from tests.support.vectors import fake_model, unit_vectors, write_vectors

DIM = 16
INFO = fake_model(DIM)

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _vectors(n: int, seed: int) -> np.ndarray:
    return unit_vectors(n, DIM, seed)


def _write(lib: Library, vectors: np.ndarray, start: int) -> list[int]:
    return write_vectors(lib, vectors, start)


@pytest.fixture
def read_sizes(monkeypatch):
    """The number of ids of each catalog.vectors call."""
    sizes: list[int] = []
    original = library_module.Catalog.vectors

    def spy(self, ids=None, dim=None):
        sizes.append(-1 if ids is None else len(ids))
        return original(self, ids, dim)

    monkeypatch.setattr(library_module.Catalog, "vectors", spy)
    return sizes


def _state(index) -> tuple[list[int], np.ndarray, np.ndarray]:
    queries = _vectors(20, seed=99)
    scores, ids = index.search(queries, 5)
    return sorted(index.ids().tolist()) if index.kind == vi.FLAT else [], scores, ids


@pytest.mark.parametrize("kind", [vi.FLAT, vi.IVF])
def test_chunked_update_equals_one_read(tmp_path, monkeypatch, read_sizes, kind):
    if kind == vi.IVF:  # a few hundred vectors make an IVF library
        monkeypatch.setattr(vi, "FLAT_MAX", 300)
        monkeypatch.setattr(vi, "FLAT_BACK", 150)
    lib = Library.create(tmp_path / "lib", INFO)
    _write(lib, _vectors(400, seed=1), start=0)
    assert lib.sync_index().kind == kind
    # Pending: 90 new images, 25 removed, interleaved ids.
    _write(lib, _vectors(90, seed=2), start=400)
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, list(range(5, 130, 5)))
    pending = lib.catalog.pending_index()
    assert len(pending) == 115

    read_sizes.clear()
    whole = lib.live_index()  # the default chunk is far above 115: one read
    assert read_sizes == [115]
    monkeypatch.setattr(library_module, "UPDATE_CHUNK", 7)
    read_sizes.clear()
    chunked = lib.live_index()
    assert max(read_sizes) == 7 and sum(read_sizes) == 115 and len(read_sizes) == 17
    assert chunked.ntotal == whole.ntotal == 400 + 90 - 25
    for a, b in zip(_state(chunked), _state(whole), strict=True):
        np.testing.assert_array_equal(a, b)

    read_sizes.clear()
    synced = lib.sync_index()  # the writer's path: chunked too, then written
    assert synced.kind == kind and not lib.catalog.pending_index()
    assert sum(read_sizes) == 115  # each changed vector read once (for vectors.f16 too)
    # A written IVF re-scores from the float16 file (vectors.f16): equal ids, scores
    # within float16 rounding (~1e-4 at 16 dimensions, ~1e-5 at 1,280).
    ids, scores, top = _state(lib.load_index())
    want_ids, want_scores, want_top = _state(whole)
    assert ids == want_ids
    np.testing.assert_array_equal(top, want_top)
    np.testing.assert_allclose(scores, want_scores, atol=1e-3 if kind == vi.IVF else 0)
    lib.close()


def test_first_update_of_an_empty_index_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(library_module, "UPDATE_CHUNK", 4)
    lib = Library.create(tmp_path / "lib", INFO)
    x = _vectors(10, seed=3)
    ids = _write(lib, x, start=0)
    index = lib.sync_index()
    assert index.ntotal == 10 and sorted(index.ids().tolist()) == sorted(ids)
    _scores, found = index.search(x[:3], 1)
    assert found[:, 0].tolist() == ids[:3]
    lib.close()
