"""The float16 file of exact vectors an IVF library re-scores with
(indexer/store/exact_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.indexer.store import exact_vectors as ev
from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.ivf_index import KeptVectors
from lookalike.indexer.store.library import EXACT_META, Library
from tests.support.vectors import fake_model, unit_vectors, write_vectors

DIM = 32
INFO = fake_model(DIM)

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _vectors(n: int, seed: int) -> np.ndarray:
    return unit_vectors(n, DIM, seed)


def test_rows_round_trip_and_fall_back(tmp_path):
    x = _vectors(50, seed=1)
    ids = np.arange(1, 51)
    path = tmp_path / ev.FILE_NAME
    with ev.Writer(path, DIM) as writer:
        writer.add(ids[:40], x[:40])
    fallback = KeptVectors()
    fallback.add(ids, x)  # stands in for the catalog
    source = ev.ExactVectors(path, DIM, fallback=fallback, stale=[3])
    # Row by row (a scattered few) and as one range (many dense ids) read the same.
    for want in ([7, 2, 45, 3], list(range(1, 51))):
        got_ids, got = source.vectors(want)
        assert sorted(got_ids.tolist()) == sorted(want)
        order = np.argsort(got_ids)
        np.testing.assert_allclose(got[order], x[np.sort(want) - 1], atol=1e-3)
    # 3 is stale and 45 is past the end of the file: both come from the fallback, exactly.
    got_ids, got = source.vectors([3, 45])
    np.testing.assert_array_equal(got[np.argsort(got_ids)], x[[2, 44]])
    # A zeroed row (a removed image) is not found without a fallback.
    ev.write_rows(path, DIM, np.array([7]), None)
    alone = ev.ExactVectors(path, DIM)
    got_ids, _ = alone.vectors([7, 8, 999])
    assert got_ids.tolist() == [8]


def test_failed_rebuild_leaves_the_old_file(tmp_path):
    path = tmp_path / ev.FILE_NAME
    with ev.Writer(path, DIM) as writer:
        writer.add(np.array([1]), _vectors(1, seed=2))
    before = path.read_bytes()
    with pytest.raises(RuntimeError), ev.Writer(path, DIM) as writer:
        writer.add(np.array([1, 2]), _vectors(2, seed=3))
        raise RuntimeError("killed mid-rebuild")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [ev.FILE_NAME]


def _write(lib: Library, vectors: np.ndarray, start: int) -> list[int]:
    return write_vectors(lib, vectors, start)


def test_ivf_library_keeps_the_file_in_line(tmp_path, monkeypatch):
    monkeypatch.setattr(vi, "FLAT_MAX", 300)
    monkeypatch.setattr(vi, "FLAT_BACK", 150)
    lib = Library.create(tmp_path / "lib", INFO)
    x = _vectors(400, seed=4)
    ids = _write(lib, x, start=0)
    index = lib.sync_index()
    path = lib.root / ev.FILE_NAME
    assert index.kind == vi.IVF and path.exists()
    assert lib.catalog.get_meta(EXACT_META) == f"float16:{DIM}"
    source = lib.exact_source()
    assert isinstance(source, ev.ExactVectors)
    got_ids, got = source.vectors(ids[:5])
    np.testing.assert_allclose(got[np.argsort(got_ids)], x[:5], atol=1e-3)

    # Each image finds itself first, scored from the file.
    scores, top = lib.load_index().search(x[:20], 1)
    assert top[:, 0].tolist() == ids[:20]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)

    # A removed image: its row is zeroed at the next sync; a new one gets a row.
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, [ids[0]])
    new = _vectors(1, seed=5)
    (new_id,) = _write(lib, new, start=1000)
    lib.sync_index()
    fresh = ev.ExactVectors(path, DIM)
    assert fresh.vectors([ids[0]])[0].tolist() == []
    np.testing.assert_allclose(fresh.vectors([new_id])[1][0], new[0], atol=1e-3)

    # A library written before the file existed gets it at its next sync.
    path.unlink()
    with lib.catalog.transaction() as conn:
        lib.catalog.set_meta(EXACT_META, "", conn)
    assert lib.exact_source() is lib.catalog
    _write(lib, _vectors(1, seed=6), start=2000)
    lib.sync_index()
    assert isinstance(lib.exact_source(), ev.ExactVectors)
    assert len(ev.ExactVectors(path, DIM).vectors(ids[1:])[0]) == len(ids) - 1

    # Shrunk back to the exact kind: the file goes.
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, ids[1:300])
    assert lib.sync_index().kind == vi.FLAT
    assert not path.exists() and lib.catalog.get_meta(EXACT_META) == ""
