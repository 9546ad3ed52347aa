"""A kept-open Searcher follows an indexing run without reloading the index file."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.store import live_index
from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.library import Library
from lookalike.search.searcher import Searcher
from tests.support.vectors import fake_model, unit_vectors, write_vectors

DIM = 24

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _change(lib: Library, ids: list[int], seed: int) -> None:
    """New vectors for existing images (their files changed), as the indexer writes them."""
    with lib.catalog.transaction() as conn:
        for i, v in zip(ids, unit_vectors(len(ids), DIM, seed), strict=True):
            conn.execute("UPDATE vectors SET vector = ? WHERE image_id = ?", (v.tobytes(), i))
            conn.execute("INSERT OR IGNORE INTO pending_index VALUES (?)", (i,))
        lib.catalog.bump_content_version(conn)


@pytest.mark.parametrize("kind", [vi.FLAT, vi.IVF])
def test_overlay_answers_as_a_rebuilt_index_would(tmp_path, monkeypatch, kind):
    if kind == vi.IVF:
        monkeypatch.setattr(vi, "FLAT_MAX", 300)
        monkeypatch.setattr(vi, "FLAT_BACK", 150)
    lib = Library.create(tmp_path / "lib", fake_model(DIM))
    ids = write_vectors(lib, unit_vectors(400, DIM, seed=1))
    assert lib.sync_index().kind == kind
    searcher = Searcher(Library.open(tmp_path / "lib"))
    loads = []
    original = searcher.library.load_index
    monkeypatch.setattr(
        searcher.library, "load_index", lambda **kw: loads.append(1) or original(**kw)
    )
    queries = unit_vectors(30, DIM, seed=9)
    searcher.index.search(queries, 5)
    assert len(loads) == 1

    # An indexing run commits, three times: new images, changed ones, removed ones.
    new = write_vectors(lib, unit_vectors(60, DIM, seed=2), start=1000)
    _change(lib, ids[:20], seed=3)
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, ids[20:30])
    queries = np.concatenate([queries, unit_vectors(5, DIM, seed=2)])  # some find new ones
    view = searcher.index
    assert isinstance(view, live_index.LiveIndex) and len(loads) == 1  # no file read again
    assert view.ntotal == 400 + 60 - 10
    scores, found = view.search(queries, 5)
    want_scores, want = lib.live_index().search(queries, 5)  # rebuilt in memory
    if kind == vi.FLAT:  # both exact: the same answer
        np.testing.assert_array_equal(found, want)
        np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    else:  # both approximate: at least as close to the exact answer as the rebuilt one
        all_ids, vectors = lib.catalog.vectors()
        truth = all_ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :5]]
        hits = [len(set(f) & set(t)) for f, t in zip(found, truth, strict=True)]
        want_hits = [len(set(f) & set(t)) for f, t in zip(want, truth, strict=True)]
        assert sum(hits) >= sum(want_hits) and sum(hits) >= 0.9 * truth.size
    assert not set(found.ravel()) & set(ids[20:30])  # removed: never found
    assert set(found[-5:, 0]) <= set(new)

    # The writer syncs (a new file): the reader loads it once, and has no overlay.
    lib.sync_index()
    assert isinstance(searcher.index, vi.VectorIndex) and len(loads) == 2


def test_too_many_changed_images_fall_back_to_a_rebuilt_index(tmp_path, monkeypatch):
    monkeypatch.setattr(live_index, "MAX_HIDDEN", 3)
    lib = Library.create(tmp_path / "lib", fake_model(DIM))
    ids = write_vectors(lib, unit_vectors(50, DIM, seed=1))
    lib.sync_index()
    searcher = Searcher(Library.open(tmp_path / "lib"))
    _change(lib, ids[:2], seed=3)
    assert isinstance(searcher.index, live_index.LiveIndex)
    _change(lib, ids[2:10], seed=4)
    index = searcher.index
    assert isinstance(index, vi.VectorIndex) and index.ntotal == 50
    changed = unit_vectors(10, DIM, seed=4)[:8]
    assert index.search(changed, 1)[1][:, 0].tolist() == ids[2:10]
