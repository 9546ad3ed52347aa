"""Damaged index files of both kinds through the library API: detected, searched from an
index rebuilt from the catalog, and never the base of a new generation."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from lookalike.indexer.store import vector_index as vi
from lookalike.indexer.store.integrity import check_library
from lookalike.indexer.store.library import Library
from lookalike.indexer.store.vector_index import FLAT, IVF
from lookalike.search.searcher import Searcher
from tests.support.vectors import fake_model, unit_vectors, write_vectors

DIM = 32
INFO = fake_model(DIM)

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(vi, "FLAT_MAX", 1000)
    monkeypatch.setattr(vi, "FLAT_BACK", 500)


def _damage(path, how):
    size = path.stat().st_size
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(size // 3)
    elif how == "deleted":
        path.unlink()
    elif how == "random":
        path.write_bytes(os.urandom(size))
    else:  # one byte flipped in the middle: only the checksum tells
        data = bytearray(path.read_bytes())
        data[size // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "deleted", "random", "flipped"])
@pytest.mark.parametrize("n, kind", [(300, FLAT), (1200, IVF)])
def test_damaged_index_is_rebuilt_from_the_catalog(tmp_path, small_limits, caplog, n, kind, how):
    x = unit_vectors(n + 1, DIM, seed=3)
    lib = Library.create(tmp_path / "lib", INFO)
    ids = write_vectors(lib, x[:n])
    assert lib.sync_index().kind == kind
    _damage(lib.index_path(), how)

    with caplog.at_level(logging.WARNING), Searcher.open(lib.root, rerank=False) as searcher:
        _scores, found = searcher.index.search(x[:5], 1)
    assert list(found[:, 0]) == ids[:5]  # not an empty index, not a MemoryError
    assert "rebuilt in memory from the catalog" in caplog.text

    more = write_vectors(lib, x[n:], start=n)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        index = lib.sync_index()
    assert "rebuilding the index from the catalog" in caplog.text
    assert index.ntotal == n + 1 and index.kind == kind
    again = lib.read_index()  # the new generation is whole and checks out
    assert sorted(again.ids()) == sorted([*ids, *more])
    assert [p.name for p in lib.root.glob("index-*.faiss")] == [lib.index_path().name]
    lib.close()


def test_a_file_without_recorded_facts_is_checked_by_count(tmp_path):
    """Libraries written before the facts were recorded: the count against the catalog."""
    x = unit_vectors(50, DIM, seed=4)
    lib = Library.create(tmp_path / "lib", INFO)
    write_vectors(lib, x[:20])
    lib.sync_index()
    with lib.catalog.transaction() as conn:
        conn.execute("DELETE FROM meta WHERE key = 'index_file'")  # as an older version left it
    assert lib.read_index().ntotal == 20
    small = vi.VectorIndex.empty(DIM)
    small.add(np.arange(1, 6), x[:5])
    small.save(lib.index_path())  # a whole file, the wrong one
    with pytest.raises(Exception, match="holds 5 vectors, the catalog 20"):
        lib.read_index()
    assert lib.load_index().ntotal == 20
    lib.close()


def test_check_finds_and_repairs_a_damaged_vectors_file(tmp_path, small_limits, caplog):
    x = unit_vectors(1200, DIM, seed=6)
    lib = Library.create(tmp_path / "lib", INFO)
    ids = write_vectors(lib, x)
    assert lib.sync_index().kind == IVF
    exact = lib.root / "vectors.f16"
    assert check_library(lib).findings == []
    data = bytearray(exact.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)  # rows overwritten
    exact.write_bytes(bytes(data))
    found = check_library(lib)
    assert [f.part for f in found.findings] == ["vectors"] and not found.ok
    assert "rows differ from the catalog" in found.findings[0].problem

    with open(exact, "r+b") as f:  # truncated: readers re-score from the catalog instead
        f.truncate(len(data) // 4)
    with caplog.at_level(logging.WARNING), Searcher.open(lib.root, rerank=False) as searcher:
        _s, top = searcher.index.search(x[-5:], 1)
    assert list(top[:, 0]) == ids[-5:] and "shorter than written" in caplog.text

    with lib.locked():
        repaired = check_library(lib, repair=True)
    assert repaired.ok and repaired.findings[0].repaired
    assert any("vectors.f16" in a for a in repaired.actions)
    assert check_library(lib).findings == []
    lib.close()


def test_check_leaves_a_running_writers_files_alone(tmp_path):
    x = unit_vectors(20, DIM, seed=7)
    lib = Library.create(tmp_path / "lib", INFO)
    write_vectors(lib, x)
    lib.sync_index()
    (lib.root / ".index-2.faiss.4242.tmp").write_bytes(b"half written")
    reader = Library.open(lib.root)
    with lib.locked():  # an index run in progress
        assert reader.writer_active()
        assert check_library(reader).findings == []
    assert not reader.writer_active()
    assert [f.part for f in check_library(reader).findings] == ["orphans"]
    reader.close()
    lib.close()
