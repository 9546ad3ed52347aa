"""`labels export --format csv|coco|yolo` and `labels import` of CSV or COCO (told
apart by content) through the real CLI: round trips into a new library of the same
files are exact, and a bad COCO file names each bad annotation."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli
from tests.support.server import copy_slice


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    photos = root / "photos"
    copy_slice(photos, classes=2, per_class=3)
    lib = root / "lib"
    run_cli("index", str(photos), "--library", str(lib), "-q", "--labels-from-folders")
    one = sorted(photos.rglob("*.jpg"))[0]
    run_cli("labels", "set", str(one), "--as", "Big cat & co (x)", "--library", str(lib))
    return root, photos, lib


def _annotations(doc):
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    return sorted(
        (files[a["image_id"]], names[a["category_id"]], tuple(a["bbox"]))
        for a in doc["annotations"]
    )


@pytest.mark.parametrize("fmt", ["coco", "csv"])
def test_export_import_export_is_exact(labelled, tmp_path, fmt):
    root, photos, lib = labelled
    first = tmp_path / f"first.{'json' if fmt == 'coco' else 'csv'}"
    run_cli("labels", "export", str(first), "--format", fmt, "--library", str(lib))
    fresh = tmp_path / "fresh"
    run_cli("index", str(photos), "--library", str(fresh), "-q")  # the same files, no labels
    done = run_cli("labels", "import", str(first), "--library", str(fresh), "--json")
    assert json.loads(done.stdout)["taken"] == 6
    second = tmp_path / f"second.{first.suffix}"
    run_cli("labels", "export", str(second), "--format", fmt, "--library", str(fresh))
    if fmt == "coco":
        a, b = json.loads(first.read_text()), json.loads(second.read_text())
        assert _annotations(a) == _annotations(b) and len(_annotations(a)) == 6
        assert a["categories"] == b["categories"]
        names = [c["name"] for c in a["categories"]]
        assert len(names) == 3 and "Big cat & co (x)" in names
    else:
        strip = [line.split(",")[:2] for line in first.read_text().splitlines()]
        assert strip == [line.split(",")[:2] for line in second.read_text().splitlines()]
    before = json.loads(run_cli("labels", "list", "--library", str(lib), "--json").stdout)
    after = json.loads(run_cli("labels", "list", "--library", str(fresh), "--json").stdout)
    assert before["labels"] == after["labels"]


def test_yolo_export_writes_classes_images_and_one_label_file_each(labelled, tmp_path):
    _root, photos, lib = labelled
    out = tmp_path / "yolo"
    run_cli("labels", "export", str(out), "--format", "yolo", "--library", str(lib))
    classes = (out / "classes.txt").read_text().splitlines()
    images = (out / "images.txt").read_text().splitlines()
    assert len(classes) == 3 and len(images) == 6
    files = sorted((out / "labels").rglob("*.txt"))
    assert len(files) == 6
    for f in files:
        cls, *box = f.read_text().split()
        assert 0 <= int(cls) < 3 and box == ["0.5", "0.5", "1", "1"]
    assert "names:" in (out / "data.yaml").read_text()


def test_a_bad_coco_file_names_each_bad_annotation_and_strict_takes_nothing(labelled, tmp_path):
    _root, photos, lib = labelled
    good = tmp_path / "good.json"
    run_cli("labels", "export", str(good), "--format", "coco", "--library", str(lib))
    doc = json.loads(good.read_text())
    first = doc["annotations"][0]
    doc["annotations"] += [
        {**first, "id": 900, "image_id": 123456},  # unknown image id
        {**first, "id": 901, "category_id": 77},  # missing category
        {**first},  # a duplicate annotation id
        {**first, "id": 902, "bbox": [10, 10, 99999, 20]},  # a box outside its image
        {**first, "id": 903, "bbox": [0, 0, 0, 5]},  # no area
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    fresh = tmp_path / "fresh"
    run_cli("index", str(photos), "--library", str(fresh), "-q")
    proc = run_cli("labels", "import", str(bad), "--library", str(fresh), "--strict", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for words in ("unknown image id 123456", "unknown category id 77", "repeats annotation 1",
                  "lies outside its", "no area"):  # fmt: skip
        assert words in proc.stderr
    listed = json.loads(run_cli("labels", "list", "--library", str(fresh), "--json").stdout)
    assert not any(c["human"] for c in listed["labels"])  # nothing half-imported
    (tmp_path / "broken.json").write_text("{not json")
    proc = run_cli("labels", "import", str(tmp_path / "broken.json"), "--library", str(fresh),
                   check=False)  # fmt: skip
    assert proc.returncode == 1 and "not a JSON document" in proc.stderr
