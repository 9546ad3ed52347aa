"""The store's public surface: the writer lock, Library.describe and the catalog's reads
(real SQLite; a tiny made-up model, since no image is decoded here)."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli import main
from lookalike.indexer.errors import CatalogUnavailable, LibraryBusy
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.catalog import IN_CHUNK, MIGRATIONS, Catalog, NewImage
from lookalike.indexer.store.library import Library

INFO = ModelInfo("test-model", 8, "none", "0")


def _add(lib: Library, n: int, start: int = 0) -> list[int]:
    """n images with distinct unit vectors and class guesses; returns their ids."""
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((n, INFO.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        NewImage(f"/photos/{i:05d}.jpg", 100 + i, i, f"{i:032x}", 40, 30, vectors[i - start],
                 [("cat", 0.75), ("dog", 0.25)])
        for i in range(start, start + n)
    ]  # fmt: skip
    with lib.catalog.transaction() as conn:
        return lib.catalog.write_images(conn, items)


@pytest.fixture
def lib(tmp_path):
    with Library.create(tmp_path / "library", INFO) as library:
        yield library


def _tag(lib: Library, image_id: int, label: str | None, confidence: float) -> None:
    with lib.catalog.transaction() as conn:  # tags are the tagger's to write; set up here
        conn.execute(
            "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, ?, ?, 'knn', ?)",
            (image_id, label, confidence, time.time()),
        )


# -- the writer lock ---------------------------------------------------------------
def test_an_inner_locked_block_keeps_the_outer_holders_lock(lib):
    other = Library.open(lib.root, readonly=False)  # another writer (own file descriptor)
    try:
        with lib.locked():
            with lib.locked():
                pass
            with pytest.raises(LibraryBusy):  # the inner exit did not unlock the outer holder
                other.lock()
        other.lock()  # released with the outermost block
        with pytest.raises(LibraryBusy):
            lib.lock()
        other.unlock()
        with lib.locked():
            pass
    finally:
        other.close()


def test_closing_a_library_releases_its_lock_however_deep(lib):
    lib.lock()
    lib.lock()
    lib.close()
    with Library.open(lib.root, readonly=False) as again, again.locked():
        pass


# -- describe ----------------------------------------------------------------------
def test_describe_says_what_the_library_holds_and_info_prints_it(lib):
    ids = _add(lib, 5)
    with lib.catalog.transaction() as conn:
        lib.catalog.set_labels(conn, [(ids[0], "cat"), (ids[1], "cat"), (ids[2], "dog")], "manual")
        lib.catalog.record_error(conn, "/photos/broken.jpg", 3, 4, "not a readable image")
    _tag(lib, ids[3], "cat", 0.9)
    _tag(lib, ids[4], None, 0.2)
    lib.sync_index()
    facts = lib.describe()
    assert facts["library"] == str(lib.root) and facts["images"] == 5
    assert facts["errors"] == [{"path": "/photos/broken.jpg", "error": "not a readable image"}]
    assert facts["model"] == "test-model" and facts["model_info"]["dim"] == 8
    assert facts["index"] == {
        "file": "index-1.faiss", "kind": "flat", "structure": "flat", "generation": 1,
        "pending": 0, "problem": None,
    }  # fmt: skip
    assert facts["copy_detection"] is None
    assert facts["labels"] == {"images": 3, "classes": {"cat": 2, "dog": 1}}
    assert facts["tags"] == {"images": 2, "unknown": 1}
    assert facts["tagging"] is None and facts["bytes"] > 0
    result = CliRunner().invoke(main, ["info", "--library", str(lib.root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {**facts, "bytes": json.loads(result.output)["bytes"]}
    text = CliRunner().invoke(main, ["info", "--library", str(lib.root)]).output
    assert "labels   3 images in 2 classes" in text and "tags     2 images (1 unknown)" in text


# -- catalog reads -----------------------------------------------------------------
def test_id_lists_longer_than_one_in_clause_are_read_whole(lib):
    n = 2 * IN_CHUNK + 7
    ids = _add(lib, n)
    cat = lib.catalog
    asked = [*ids, 10**9]  # one unknown id
    assert cat.existing_ids(asked) == set(ids)
    assert sorted(cat.paths(asked)) == ids
    assert len(cat.cards(asked)) == n
    paths = [f"/photos/{i:05d}.jpg" for i in range(n)] + ["/photos/none.jpg"]
    assert cat.ids_of_paths(paths) == dict(zip(paths[:n], ids, strict=True))
    found, vectors = cat.vectors(asked)
    assert sorted(found.tolist()) == ids and vectors.shape == (n, INFO.dim)


def test_cards_labels_and_tags(lib):
    ids = _add(lib, 4)
    cat = lib.catalog
    with cat.transaction() as conn:
        cat.set_labels(conn, [(ids[0], "cat")], "folder")
    _tag(lib, ids[1], "dog", 0.8)
    _tag(lib, ids[2], None, 0.1)
    cards = {c.id: c for c in cat.cards(ids)}
    assert (cards[ids[0]].label, cards[ids[0]].tagged) == ("cat", False)
    assert (cards[ids[1]].tagged, cards[ids[1]].tag, cards[ids[1]].confidence) == (True, "dog", 0.8)
    assert (cards[ids[2]].tagged, cards[ids[2]].tag) == (True, None)
    assert cards[ids[3]].label is None and not cards[ids[3]].tagged
    assert cat.label_row(ids[0])["origin"] == "folder" and cat.label_row(ids[1]) is None
    assert cat.tag_row(ids[1])["label"] == "dog" and cat.tag_row(ids[0]) is None
    assert cat.label_origins() == {ids[0]: "folder"}
    assert cat.label_counts() == [("cat", 1)]
    assert cat.tag_counts() == (2, 1)
    assert cat.image_counts() == (4, 1, 2, 1, 0)
    with cat.transaction() as conn:
        cat.remove_tags(conn, [ids[1]])
    assert cat.tag_row(ids[1]) is None and cat.tag_counts() == (1, 1)


def test_browse_pages_and_error_pages_follow_their_keys(lib):
    ids = _add(lib, 7)
    cat = lib.catalog
    with cat.transaction() as conn:
        cat.set_labels(conn, [(i, "cat") for i in ids[:3]], "manual")
        for name in ("c", "a", "b"):
            cat.record_error(conn, f"/bad/{name}.jpg", None, None, "unreadable")
    assert cat.browse_ids("all", None, 0, 4) == ids[:4]
    assert cat.browse_ids("all", None, ids[3], 4) == ids[4:]
    assert cat.browse_ids("unlabelled", None, 0, 60) == ids[3:]
    assert cat.browse_ids("labelled", "cat", ids[0], 60) == ids[1:3]
    first = cat.errors_after("", 2)
    assert [e.path for e in first] == ["/bad/a.jpg", "/bad/b.jpg"] and first[0].at > 0
    assert [e.path for e in cat.errors_after(first[-1].path, 2)] == ["/bad/c.jpg"]


def test_stored_embedding_is_what_indexing_wrote(lib):
    (image_id,) = _add(lib, 1, start=3)
    stored = lib.catalog.stored_embedding(image_id)
    assert stored is not None and (stored.width, stored.height) == (40, 30)
    np.testing.assert_array_equal(stored.vector, lib.catalog.vector(image_id))
    assert stored.top == [("cat", 0.75), ("dog", 0.25)]
    assert lib.catalog.stored_embedding(image_id + 1) is None


def test_a_catalog_of_a_newer_schema_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    for readonly in (False, True):
        with pytest.raises(CatalogUnavailable, match="written by a newer Lookalike"):
            Catalog(path, readonly=readonly)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1


def test_a_migration_that_fails_names_the_step_and_keeps_the_version(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    # A catalog whose tables are ahead of its version (as another build's schema may be).
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    with pytest.raises(CatalogUnavailable, match=f"from schema {len(MIGRATIONS) - 1} to"):
        Catalog(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1
