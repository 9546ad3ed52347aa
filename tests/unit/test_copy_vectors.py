"""Copy descriptors in the catalog: built for what lacks one, kept in step with the
images (changed content, removals), resumable, and a reader's index that catches up.

A made-up copy model (a hash of the pixels) keeps these tests about the bookkeeping;
tests/e2e/test_copy_detection.py runs the real one.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from lookalike.indexer.models.copy_model import CopyModelInfo
from lookalike.indexer.store import copy_vectors
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library
from tests.support.vectors import fake_model, unit_vectors

DIM = 8


class FakeCopyModel:
    """Descriptors from the image's pixels (so a changed file gets another)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.info = CopyModelInfo("fake-copy", "0" * 16, DIM)
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, image: Image.Image) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # Ctrl-C, or the process killed
        seed = int(hashlib.sha256(image.tobytes()).hexdigest()[:8], 16)
        return unit_vectors(1, DIM, seed)[0]


def _photo(path, colour) -> str:
    Image.new("RGB", (40, 30), colour).save(path)
    return str(path)


def _add(lib: Library, paths: list[str]) -> list[int]:
    vectors = unit_vectors(len(paths), 4, seed=len(paths))
    items = [NewImage(p, 1, 1, p, 40, 30, v, None) for p, v in zip(paths, vectors, strict=True)]
    with lib.catalog.transaction() as conn:
        return lib.catalog.write_images(conn, items)


@pytest.fixture
def lib(tmp_path):
    library = Library.create(tmp_path / "lib", fake_model(4))
    yield library
    library.close()


def test_build_computes_only_what_is_missing(lib, tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", (i * 20, 0, 0)) for i in range(5)]
    ids = _add(lib, paths)
    model = FakeCopyModel()
    copy_vectors.enable(lib, model)
    first = copy_vectors.build(lib, model)
    assert (first.computed, first.total, first.skipped) == (5, 5, [])
    again = copy_vectors.build(lib, model)
    assert (again.computed, again.total) == (0, 5)
    assert model.calls == 5

    # New content under a known path: its old descriptor goes, and only it is recomputed.
    _photo(tmp_path / "2.png", (0, 255, 0))
    _add(lib, [paths[2]])
    assert lib.catalog.count_copy_vectors() == 4
    assert copy_vectors.build(lib, model).computed == 1
    # A removed image takes its descriptor with it.
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, [ids[0]])
    assert lib.catalog.count_copy_vectors() == 4
    assert sorted(lib.catalog.copy_vector_ids().tolist()) == ids[1:]


def test_an_unreadable_file_is_reported_and_tried_again(lib, tmp_path):
    good = _photo(tmp_path / "good.png", (10, 10, 10))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    _add(lib, [good, str(bad)])
    model = FakeCopyModel()
    done = copy_vectors.build(lib, model)
    assert done.computed == 1 and [p for p, _r in done.skipped] == [str(bad)]
    _photo(bad, (200, 0, 0))  # repaired
    assert copy_vectors.build(lib, model).computed == 1


def test_an_image_the_model_fails_on_is_reported_and_the_run_goes_on(lib, tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", (i, 9, 9)) for i in range(3)]
    _add(lib, paths)
    model = FakeCopyModel()
    real_embed = model.embed

    def embed(image):
        if image.getpixel((0, 0))[0] == 1:
            raise ValueError("odd pixels")
        return real_embed(image)

    model.embed = embed
    done = copy_vectors.build(lib, model)
    assert done.computed == 2
    assert done.skipped == [(paths[1], "copy model failed: odd pixels")]


def test_an_interrupted_build_keeps_its_commits_and_a_rerun_finishes(lib, tmp_path, monkeypatch):
    monkeypatch.setattr(copy_vectors, "COMMIT_EVERY", 3)
    paths = [_photo(tmp_path / f"{i}.png", (i, 2 * i, 3 * i)) for i in range(8)]
    _add(lib, paths)
    with pytest.raises(KeyboardInterrupt):
        copy_vectors.build(lib, FakeCopyModel(fail_after=7))
    assert lib.catalog.count_copy_vectors() == 6  # two commits of three
    rerun = FakeCopyModel()
    assert copy_vectors.build(lib, rerun).computed == 2 and rerun.calls == 2
    assert lib.catalog.count_copy_vectors() == 8


def test_another_copy_model_drops_the_old_descriptors_and_disable_removes_all(lib, tmp_path):
    _add(lib, [_photo(tmp_path / "a.png", (1, 2, 3))])
    model = FakeCopyModel()
    copy_vectors.enable(lib, model)
    copy_vectors.build(lib, model)
    other = FakeCopyModel()
    other.info = CopyModelInfo("other", "1" * 16, DIM)
    copy_vectors.enable(lib, other)
    assert lib.catalog.count_copy_vectors() == 0
    assert lib.copy_model_info() == other.info
    copy_vectors.disable(lib)
    assert lib.copy_model_info() is None


def test_a_reader_index_catches_up_with_additions_changes_and_removals(lib, tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", (i * 30, 5, 5)) for i in range(6)]
    ids = _add(lib, paths)
    model = FakeCopyModel()
    copy_vectors.enable(lib, model)
    copy_vectors.build(lib, model)
    reader = Library.open(lib.root, readonly=True)
    try:
        index = copy_vectors.CopyIndex(reader.catalog, model.info)
        index.refresh()
        assert index.ntotal == 6
        probe = model.embed(Image.open(paths[3]).convert("RGB"))
        _scores, found = index.search(probe[None], 1)
        assert found[0, 0] == ids[3]

        # image 3 changes, image 4 goes, a new one comes
        _photo(tmp_path / "3.png", (0, 0, 255))
        _add(lib, [paths[3]])
        with lib.catalog.transaction() as conn:
            lib.catalog.remove_images(conn, [ids[4]])
        new_id = _add(lib, [_photo(tmp_path / "new.png", (9, 99, 199))])[0]
        copy_vectors.build(lib, model)
        index.refresh()
        assert index.ntotal == 6
        scores, found = index.search(probe[None], 6)
        assert ids[4] not in found[0] and new_id in found[0]
        assert scores[0, list(found[0]).index(ids[3])] < 0.99  # the old pixels' descriptor is gone
        changed = model.embed(Image.open(paths[3]).convert("RGB"))
        assert index.search(changed[None], 1)[1][0, 0] == ids[3]
    finally:
        reader.close()


def test_an_empty_index_answers_with_padding(lib):
    index = copy_vectors.CopyIndex(lib.catalog, CopyModelInfo("x", "0", DIM))
    index.refresh()
    scores, ids = index.search(np.ones((2, DIM), np.float32), 3)
    assert ids.shape == (2, 3) and (ids == -1).all()
