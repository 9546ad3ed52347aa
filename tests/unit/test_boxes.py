"""Boxes over a real library (real model, SQLite): validation, vectors, staleness, removal."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from lookalike.classifier import boxes
from lookalike.classifier.labels import BadLabel
from lookalike.classifier.tagging.tagger import compute_tags
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store import boxes as store
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library
from tests.support.webapp import build_library, copy_library, embedder


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("boxlib"))


@pytest.fixture()
def lib(source, tmp_path):
    with Library.open(copy_library(source, tmp_path / "library"), readonly=False) as lib:
        yield lib


def first_image(lib):
    row = lib.catalog.conn.execute("SELECT id FROM images ORDER BY id LIMIT 1").fetchone()
    return lib.catalog.image(row[0])


@pytest.mark.parametrize(
    ("region", "why"),
    [
        ((10, 10, 10, 40), "zero area"),
        ((40, 10, 10, 40), "inverted"),
        ((10, 40, 40, 10), "inverted"),
        ((-1, 0, 20, 20), "outside the 100x80 image"),
        ((0, 0, 101, 20), "outside the 100x80 image"),
        ((0, 0, 20, 81), "outside"),
        ((0.1, 0.1, 0.4, 0.4), "no whole pixel"),
        ((0, 0, float("nan"), 3), "finite"),
        ((0, 0, 3), "four numbers"),
        ((0, 0, True, 3), "numbers"),
        ("0,0,3,3", "four numbers"),
    ],
)
def test_bad_boxes_are_refused_saying_why(region, why):
    with pytest.raises(boxes.BadBox, match=why):
        boxes.check_box(region, 100, 80)


def test_a_box_is_whole_pixels_inside_the_image():
    assert boxes.check_box([0, 0, 100, 80], 100, 80) == (0, 0, 100, 80)
    assert boxes.check_box((1.4, 2.6, 50.5, 60.2), 100, 80) == (1, 3, 50, 60)
    assert boxes.parse_box("1,2,30,40") == (1, 2, 30, 40)
    with pytest.raises(boxes.BadBox, match="four numbers"):
        boxes.parse_box("1,2,x,4")


def test_add_box_stores_region_label_and_the_crops_vector(lib):
    image = first_image(lib)
    w, h = image["width"], image["height"]
    region = (w // 4, h // 4, w // 2 + 10, h // 2 + 10)
    existing = lib.catalog.label_of(image["id"])
    row = boxes.add_box(lib, embedder(), image["id"], region, f"  {existing.upper()} ")
    assert row.box == region and row.origin == "human" and not row.stale
    assert row.label == existing  # the label rule and the library's spelling
    assert row.hash == image["hash"]
    vector = store.box_vector(lib.catalog, row.id)
    # The same vector a region query embeds for that box (searcher.embed_image).
    from lookalike.search.searcher import Searcher

    query = Searcher(lib, embedder()).embed_image(image["path"], box=region)
    assert vector is not None and float(vector @ query) > 0.9999
    whole = lib.catalog.vector(image["id"])
    assert float(vector @ whole) < 0.999  # a crop, not the image
    assert [b.id for b in store.boxes_of(lib.catalog, image["id"])] == [row.id]


def test_bad_input_writes_nothing(lib):
    image = first_image(lib)
    version = lib.catalog.labels_version()
    with pytest.raises(boxes.BadBox):
        boxes.add_box(lib, embedder(), image["id"], (5, 5, 2, 9), "cat")
    with pytest.raises(BadLabel):
        boxes.add_box(lib, embedder(), image["id"], (0, 0, 9, 9), "a<b")
    with pytest.raises(boxes.UnknownImage, match="no image with id 999999"):
        boxes.add_box(lib, embedder(), 999999, (0, 0, 9, 9), "cat")
    with pytest.raises(boxes.ImageChanged, match="changed since it was shown"):
        boxes.add_box(lib, embedder(), image["id"], (0, 0, 9, 9), "cat", expect_hash="other")
    with pytest.raises(boxes.UnknownBox):
        boxes.update_box(lib, embedder(), 424242, label="x")
    with pytest.raises(boxes.UnknownBox):
        boxes.delete_boxes(lib, [424242])
    assert store.boxes_of(lib.catalog, image["id"]) == []
    assert lib.catalog.labels_version() == version


def test_a_changed_file_is_not_boxed(lib, tmp_path):
    """A file whose content is not the content indexed: no box (the session's photos are
    shared by other tests and served by identity, so this one is a copy of its own)."""
    from lookalike.indexer.scan import file_hash

    source = first_image(lib)
    path = tmp_path / "own.jpg"
    shutil.copy(source["path"], path)
    data = path.read_bytes()
    item = NewImage(
        str(path), len(data), path.stat().st_mtime_ns, file_hash(data), source["width"],
        source["height"], lib.catalog.vector(source["id"]), None,
    )  # fmt: skip
    with lib.catalog.transaction() as conn:
        (image_id,) = lib.catalog.write_images(conn, [item])
    boxes.add_box(lib, embedder(), image_id, (0, 0, 9, 9), "cat")  # the content indexed
    Image.new("RGB", (source["width"], source["height"]), "red").save(path, "JPEG")
    with pytest.raises(boxes.ImageChanged, match="changed since it was indexed"):
        boxes.add_box(lib, embedder(), image_id, (0, 0, 9, 9), "cat")
    assert len(store.boxes_of(lib.catalog, image_id)) == 1


def test_new_content_makes_boxes_stale_and_they_are_not_learnt_from(lib):
    image = first_image(lib)
    row = boxes.add_box(lib, embedder(), image["id"], (0, 0, 20, 20), "corner")
    key = lib.model_info().key()
    assert store.labelled_box_vectors(lib.catalog, key)[0] == ["corner"]
    with lib.catalog.transaction() as conn:  # an index run re-embedding new content
        lib.catalog.write_images(
            conn,
            [
                NewImage(
                    image["path"],
                    1,
                    1,
                    "new-content",
                    image["width"],
                    image["height"],
                    lib.catalog.vector(image["id"]),
                    None,
                )
            ],
        )
    stale = store.box(lib.catalog, row.id)
    assert stale is not None and stale.stale
    assert lib.describe()["boxes"] == {"human": 1, "stale": 1}  # info reports it
    assert store.labelled_box_vectors(lib.catalog, key)[0] == []
    assert store.export_boxes(lib.catalog) == []
    with pytest.raises(boxes.ImageChanged, match="earlier content"):
        boxes.update_box(lib, embedder(), row.id, label="corner")
    assert store.box(lib.catalog, row.id) == stale  # unchanged


def test_update_moves_relabels_and_accepts_a_suggestion(lib):
    image = first_image(lib)
    suggested = boxes.add_suggested(lib, image["id"], (1, 2, 30, 40))
    assert suggested.origin == "suggested" and suggested.label is None
    assert store.box_vector(lib.catalog, suggested.id) is None
    again = boxes.add_suggested(lib, image["id"], (3, 4, 30, 40))  # replaces the first
    assert [b.id for b in store.boxes_of(lib.catalog, image["id"])] == [again.id]
    with pytest.raises(BadQuery, match="no label yet"):
        boxes.update_box(lib, embedder(), again.id)
    accepted = boxes.update_box(lib, embedder(), again.id, label="thing")
    assert accepted.origin == "human" and accepted.label == "thing" and accepted.box == again.box
    moved = boxes.update_box(lib, embedder(), again.id, region=[5, 6, 40, 50])
    assert moved.box == (5, 6, 40, 50) and moved.label == "thing"
    assert moved.created == accepted.created and moved.updated >= accepted.updated
    with pytest.raises(boxes.UnknownBox):  # on another image than the one named
        boxes.update_box(lib, embedder(), again.id, label="x", image_id=image["id"] + 1)
    assert boxes.delete_boxes(lib, [again.id]) == 1
    assert store.boxes_of(lib.catalog, image["id"]) == []


def test_removed_images_keep_their_boxes_by_content(lib):
    image = first_image(lib)
    boxes.add_box(lib, embedder(), image["id"], (0, 0, 20, 20), "corner")
    vector = lib.catalog.vector(image["id"])
    with lib.catalog.transaction() as conn:
        lib.catalog.remove_images(conn, [image["id"]])
    assert store.box_counts(lib.catalog) == (0, 0)
    item = NewImage(
        image["path"] + ".copy.jpg",
        1,
        1,
        image["hash"],
        image["width"],
        image["height"],
        vector,
        None,
    )
    with lib.catalog.transaction() as conn:
        (new_id,) = lib.catalog.write_images(conn, [item])
    back = store.boxes_of(lib.catalog, new_id)
    assert [(b.box, b.label, b.origin, b.stale) for b in back] == [
        ((0, 0, 20, 20), "corner", "human", False)
    ]


def test_removed_images_keep_their_hidden_and_keep_marks_by_content(lib):
    """A hidden image and a kept one leave the library (a disk gone, a file moved between
    two runs' folders) and come back under other names: hidden and kept again."""
    from lookalike.indexer.store.image_marks import hidden_ids, kept_ids, set_hidden, set_kept

    first, second = (lib.catalog.image(i) for i in sorted(lib.catalog.labels())[:2])
    vector = lib.catalog.vector(first["id"])
    with lib.catalog.transaction() as conn:
        set_hidden(conn, first["id"], True)
        set_kept(conn, second["id"], [first["id"], second["id"]])
        lib.catalog.remove_images(conn, [first["id"], second["id"]])
    assert hidden_ids(lib.catalog) == set() and kept_ids(lib.catalog) == set()
    items = [
        NewImage(
            image["path"] + ".back.jpg",
            1,
            1,
            image["hash"],
            image["width"],
            image["height"],
            vector,
            None,
        )
        for image in (first, second)
    ]
    with lib.catalog.transaction() as conn:
        hidden_back, kept_back = lib.catalog.write_images(conn, items)
    assert hidden_ids(lib.catalog) == {hidden_back} and kept_ids(lib.catalog) == {kept_back}


def test_box_vectors_join_the_tagger_only_when_there_are_boxes(lib):
    before = compute_tags(lib)
    assert compute_tags(lib).results == before.results  # deterministic without boxes
    # A box of one class's image labelled as another class moves that class's
    # prototype: the tags change, and the box's image keeps its own human label.
    labels = lib.catalog.labels()
    names = sorted(set(labels.values()))
    target = next(i for i, lab in labels.items() if lab == names[0])
    image = lib.catalog.image(target)
    for n in range(3):
        boxes.add_box(
            lib, embedder(), target, (n, n, image["width"] - n, image["height"] - n), names[1]
        )
    after = compute_tags(lib)
    assert after.info.labelled == before.info.labelled  # images; boxes are extra seeds
    assert {r.id for r in after.results} == {r.id for r in before.results}
    assert [(r.label, r.confidence) for r in after.results] != [
        (r.label, r.confidence) for r in before.results
    ]
    assert np.isfinite([r.confidence for r in after.results]).all()


def test_without_boxes_tagging_is_the_tagging_of_the_labelled_images_alone(lib):
    """No boxes: compute_tags gives exactly what tag_vectors gives on the images (the
    path scripts/bench_tagging.py measures)."""
    from lookalike.classifier.tagging.tagger import (
        DEFAULT_CLUSTERS,
        DEFAULT_MIN_CONFIDENCE,
        tag_vectors,
    )

    run = compute_tags(lib)
    ids, vectors = lib.catalog.vectors()
    labels = lib.catalog.labels()
    seeds = np.array([r for r, i in enumerate(ids) if int(i) in labels])
    rows, guesses, prediction, _ = tag_vectors(
        vectors, seeds, [labels[int(ids[r])] for r in seeds], clusters=DEFAULT_CLUSTERS
    )
    tagged, confidence = prediction.decide(DEFAULT_MIN_CONFIDENCE)
    expected = [
        (int(ids[r]), g if t else None, float(c))
        for r, g, t, c in zip(rows, guesses, tagged, confidence, strict=True)
    ]
    assert [(r.id, r.label, r.confidence) for r in run.results] == expected


def test_an_image_label_takes_the_spelling_of_a_box_label(lib):
    from lookalike.classifier.labels import set_labels

    image = first_image(lib)
    boxes.add_box(lib, embedder(), image["id"], (0, 0, 20, 20), "Ear Flap")
    set_labels(lib, [image["id"]], "ear flap")
    assert lib.catalog.label_of(image["id"]) == "Ear Flap"
