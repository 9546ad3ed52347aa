"""Incremental indexing rules, with a small fake model for speed and isolation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lookalike.indexer.batch import EARLIER, IndexOptions, index_paths
from lookalike.indexer.errors import ModelMismatch
from lookalike.indexer.store.library import Library
from lookalike.search.searcher import Searcher
from tests.support.fakes import FakeEmbedder, random_image


def _index(lib_dir, *roots, embedder=None, **opts):
    embedder = embedder or FakeEmbedder()
    with Library.create(lib_dir, embedder.info) as lib:
        options = IndexOptions(progress=False, **opts)
        return index_paths(lib, embedder, [str(r) for r in roots], options), embedder


@pytest.fixture
def folders(tmp_path):
    for i in range(6):
        random_image(tmp_path / "a" / f"cat{i % 2}" / f"{i}.png", i)
    for i in range(3):
        random_image(tmp_path / "b" / f"{i}.png", 100 + i)
    return tmp_path


def test_only_new_or_changed_files_are_embedded(folders):
    lib = folders / "lib"
    s, fake = _index(lib, folders / "a", folders / "b")
    assert (s.added, fake.calls) == (9, 9)
    s, fake = _index(lib, folders / "a", folders / "b")
    assert (s.added, s.unchanged, fake.calls) == (0, 9, 0)
    random_image(folders / "a" / "cat0" / "0.png", 999)  # new content, same path
    s, fake = _index(lib, folders / "a")
    assert (s.updated, s.unchanged, fake.calls) == (1, 5, 1)


def test_move_between_roots_keeps_id_and_label(folders):
    lib = folders / "lib"
    _index(lib, folders / "a", labels_from_folders=True)
    _index(lib, folders / "b")
    with Library.open(lib) as library:
        row = library.catalog.image_by_path(str(folders / "a" / "cat0" / "0.png"))
        assert library.catalog.label_of(row["id"]) == "cat0"
    shutil.move(folders / "a" / "cat0" / "0.png", folders / "b" / "moved.png")
    s, fake = _index(lib, folders / "b")  # only b is scanned: the source lay outside it
    assert (s.moved, s.added, fake.calls) == (1, 0, 0)
    with Library.open(lib) as library:
        moved = library.catalog.image_by_path(str(folders / "b" / "moved.png"))
        assert moved["id"] == row["id"]
        assert library.catalog.label_of(moved["id"]) == "cat0"


def test_copy_reuses_vector_and_deletion_removes(folders):
    lib = folders / "lib"
    _index(lib, folders / "b")
    shutil.copy(folders / "b" / "0.png", folders / "b" / "copy.png")
    (folders / "b" / "1.png").unlink()
    s, fake = _index(lib, folders / "b")
    assert (s.copied, s.removed, fake.calls) == (1, 1, 0)
    with Library.open(lib) as library:
        assert library.catalog.count() == 3
        a = library.catalog.image_by_path(str(folders / "b" / "0.png"))["id"]
        b = library.catalog.image_by_path(str(folders / "b" / "copy.png"))["id"]
        assert np.array_equal(library.catalog.vector(a), library.catalog.vector(b))
        assert library.live_index().ntotal == 3


def test_errors_are_kept_until_the_file_changes_or_goes(folders):
    lib = folders / "lib"
    bad = folders / "b" / "bad.png"
    bad.write_bytes(b"nope")
    s, _ = _index(lib, folders / "b")
    assert [x.path for x in s.skipped] == [str(bad)]
    s, _ = _index(lib, folders / "b")  # unchanged: reported from the catalog, not re-read
    assert [x.reason for x in s.skipped] == [f"not a readable image {EARLIER}"]
    bad.unlink()
    _index(lib, folders / "b")
    with Library.open(lib) as library:
        assert library.catalog.errors() == []


def test_folder_labels_do_not_override_a_persons_label(folders):
    lib = folders / "lib"
    _index(lib, folders / "a", labels_from_folders=True)
    with Library.open(lib, readonly=False) as library:
        image_id = library.catalog.image_by_path(str(folders / "a" / "cat1" / "1.png"))["id"]
        with library.catalog.transaction() as conn:
            library.catalog.set_labels(conn, [(image_id, "tabby")], origin="manual")
    _index(lib, folders / "a", labels_from_folders=True)
    with Library.open(lib) as library:
        assert library.catalog.label_of(image_id) == "tabby"


def test_another_model_is_refused(folders):
    lib = folders / "lib"
    _index(lib, folders / "b")
    with pytest.raises(ModelMismatch, match="--model fake"):
        _index(lib, folders / "b", embedder=FakeEmbedder("other"))


def test_searcher_sees_committed_vectors_before_the_index_file(folders):
    lib = folders / "lib"
    fake = FakeEmbedder()
    _index(lib, folders / "b", embedder=fake)
    with Library.open(lib, readonly=False) as library:
        # Simulate a run that committed rows but died before writing the index file.
        with library.catalog.transaction() as conn:
            conn.execute("INSERT INTO pending_index SELECT id FROM images")
            conn.execute("DELETE FROM meta WHERE key = 'index_generation'")
    searcher = Searcher.open(lib, embedder=fake)
    try:
        hits = searcher.search(folders / "b" / "2.png", k=1)
        assert hits[0].path == str(folders / "b" / "2.png")
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        searcher.close()


def test_labels_per_class_and_unlabelled_folders(folders):
    lib = folders / "lib"
    for i in range(2):
        random_image(folders / "a" / "distractors" / f"d{i}.png", 200 + i)
    s, _ = _index(
        lib,
        folders / "a",
        labels_from_folders=True,
        labels_per_class=2,
        unlabelled_folders=("distractors",),
    )
    assert s.labelled == 4  # 2 of cat0's 3, 2 of cat1's 3, none of the distractors
    with Library.open(lib) as library:
        assert dict(library.catalog.label_counts()) == {"cat0": 2, "cat1": 2}
        first = library.catalog.image_by_path(str(folders / "a" / "cat0" / "0.png"))["id"]
        last = library.catalog.image_by_path(str(folders / "a" / "cat0" / "4.png"))["id"]
        assert (library.catalog.label_of(first), library.catalog.label_of(last)) == ("cat0", None)
