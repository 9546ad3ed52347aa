"""Boxes through the real CLI: `labels set --box`, `labels boxes`, `labels remove-box`,
one-line errors, and COCO / YOLO exports with boxes (the COCO round trip is exact)."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from tests.support.cli import run_cli
from tests.support.server import copy_slice


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes-cli")
    photos = root / "photos"
    copy_slice(photos, classes=2, per_class=3)
    run_cli("index", str(photos), "--library", str(root / "lib"), "-q", "--labels-from-folders")
    return root


@pytest.fixture
def lib(built, tmp_path):
    shutil.copytree(built / "lib", tmp_path / "lib")
    return tmp_path / "lib"


def cli(lib, *args, check=True):
    return run_cli(*args, "--library", str(lib), check=check)


def images(built):
    return sorted((built / "photos").rglob("*.jpg"))


def boxes_of(lib, path):
    return json.loads(cli(lib, "labels", "boxes", str(path), "--json").stdout)


def test_set_box_lists_and_removes(built, lib):
    one = images(built)[0]
    w, h = Image.open(one).size
    done = cli(lib, "labels", "set", str(one), "--as", "  Ear ", "--box", f"2,3,{w // 2},{h // 2}")
    assert done.stdout.startswith("box ") and "as 'Ear'" in done.stdout
    listed = boxes_of(lib, one)
    assert [(b["box"], b["label"], b["origin"], b["stale"]) for b in listed] == [
        ([2, 3, w // 2, h // 2], "Ear", "human", False)
    ]
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", f"0,0,{w},{h}")
    listed = boxes_of(lib, one)
    assert [b["label"] for b in listed] == ["Ear", "Ear"]  # one label, first spelling
    text = cli(lib, "labels", "boxes", str(one)).stdout.splitlines()
    assert text[0].split("\t") == [str(listed[0]["id"]), f"2,3,{w // 2},{h // 2}", "Ear", "human"]
    # The image's own label is untouched by its boxes.
    labels = json.loads(cli(lib, "labels", "list", "--json").stdout)["labels"]
    assert sum(c["human"] for c in labels) == 6
    gone = cli(lib, "labels", "remove-box", str(listed[0]["id"]))
    assert gone.stdout.strip() == "removed 1 box"
    assert [b["id"] for b in boxes_of(lib, one)] == [listed[1]["id"]]


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ("5,5,5,40", "has zero area"),
        ("40,5,5,40", "is inverted"),
        ("0,0,99999,10", "is outside the"),
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "four numbers"),
    ],
)
def test_bad_boxes_are_one_line_errors_and_change_nothing(built, lib, box, words):
    one = images(built)[0]
    proc = cli(lib, "labels", "set", str(one), "--as", "x", "--box", box, check=False)
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0]
    assert boxes_of(lib, one) == []


def test_other_bad_input_is_one_line_too(built, lib, tmp_path):
    one, two = images(built)[:2]
    cases = [
        (("labels", "set", str(one), str(two), "--as", "x", "--box", "0,0,5,5"), "one PATH"),
        (("labels", "set", str(one.parent), "--as", "x", "--box", "0,0,5,5"), "is a folder"),
        (
            ("labels", "set", str(tmp_path / "nope.jpg"), "--as", "x", "--box", "0,0,5,5"),
            "not in the library",
        ),  # fmt: skip
        (("labels", "set", str(one), "--as", "a<b", "--box", "0,0,5,5"), "odd characters"),
        (("labels", "boxes", str(tmp_path / "nope.jpg")), "not in the library"),
        (("labels", "remove-box", "424242"), "no box with id 424242"),
    ]
    for args, words in cases:
        proc = cli(lib, *args, check=False)
        assert proc.returncode in (1, 2), (args, proc)
        assert words in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert boxes_of(lib, one) == []


def _annotations(doc):
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    return [
        (a["id"], files[a["image_id"]], names[a["category_id"]], tuple(a["bbox"]), a["kind"])
        for a in doc["annotations"]
    ]


def test_coco_round_trip_with_boxes_is_exact(built, lib, tmp_path):
    one, two = images(built)[:2]
    w, h = Image.open(one).size
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", f"1,2,{w // 2},{h // 3}")
    cli(lib, "labels", "set", str(one), "--as", "nose", "--box", f"10,10,{w - 1},{h - 1}")
    cli(lib, "labels", "remove", str(two))  # an image with a box and no label
    cli(lib, "labels", "set", str(two), "--as", "ear", "--box", "0,0,20,30")
    first = tmp_path / "first.json"
    cli(lib, "labels", "export", str(first), "--format", "coco")
    a = json.loads(first.read_text())
    assert sorted(k for *_, k in _annotations(a)) == ["box"] * 3 + ["image"] * 5
    fresh = tmp_path / "fresh"
    run_cli("index", str(built / "photos"), "--library", str(fresh), "-q")
    done = json.loads(cli(fresh, "labels", "import", str(first), "--json").stdout)
    assert done["taken"] == 8 and done["boxes_new"] == 3 and done["rejected"] == []
    second = tmp_path / "second.json"
    cli(fresh, "labels", "export", str(second), "--format", "coco")
    b = json.loads(second.read_text())
    assert _annotations(a) == _annotations(b)
    assert a["categories"] == b["categories"]
    # Importing the same file again adds nothing.
    again = json.loads(cli(fresh, "labels", "import", str(first), "--json").stdout)
    assert again["boxes_new"] == 0 and again["boxes_unchanged"] == 3
    assert len(boxes_of(fresh, one)) == 2


def test_yolo_export_has_a_line_per_box(built, lib, tmp_path):
    one = images(built)[0]
    w, h = Image.open(one).size
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", f"0,0,{w // 2},{h // 2}")
    out = tmp_path / "yolo"
    cli(lib, "labels", "export", str(out), "--format", "yolo")
    classes = (out / "classes.txt").read_text().splitlines()
    label_file = out / "labels" / one.parent.name / f"{one.stem}.txt"
    lines = [line.split() for line in label_file.read_text().splitlines()]
    assert lines[0][1:] == ["0.5", "0.5", "1", "1"]
    assert classes[int(lines[1][0])] == "ear"
    assert [float(v) for v in lines[1][1:]] == pytest.approx(
        [(w // 2) / 2 / w, (h // 2) / 2 / h, (w // 2) / w, (h // 2) / h], abs=1e-6
    )


def test_bad_coco_boxes_are_named_and_strict_imports_nothing(built, lib, tmp_path):
    one = images(built)[0]
    w, h = Image.open(one).size
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", f"1,2,{w // 2},{h // 3}")
    good = tmp_path / "good.json"
    cli(lib, "labels", "export", str(good), "--format", "coco")
    doc = json.loads(good.read_text())
    box = next(a for a in doc["annotations"] if a["kind"] == "box")
    im = next(i for i in doc["images"] if i["id"] == box["image_id"])
    doc["annotations"] += [
        {**box, "id": 900, "bbox": [w - 5, 0, 20, 10]},  # outside its image
        {**box, "id": 901, "image_id": 4242},  # unknown image id
        {**box, "id": 902, "category_id": 99},  # missing category
        {**box},  # duplicate annotation id
        {**box, "id": 903, "bbox": [5, 5, 0, 10]},  # no area
        {**box, "id": 904, "kind": "circle"},
    ]
    doc["images"].append({**im, "id": 77, "width": w + 1})
    doc["annotations"].append({**box, "id": 905, "image_id": 77})  # not the library's size
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    fresh = tmp_path / "fresh"
    run_cli("index", str(built / "photos"), "--library", str(fresh), "-q")
    proc = cli(fresh, "labels", "import", str(bad), "--strict", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for words in (
        "annotation id 900: bbox",
        "lies outside its",
        "unknown image id 4242",
        "unknown category id 99",
        f"annotation id {box['id']} repeats annotation",
        "annotation id 903: bbox has no area",
        "annotation id 904: kind is 'circle'",
        f"annotation id 905: the file gives the image as {w + 1}x{h}",
    ):
        assert words in proc.stderr, words
    assert "nothing imported (--strict)" in proc.stdout
    assert boxes_of(fresh, one) == []  # nothing half-imported
    listed = json.loads(cli(fresh, "labels", "list", "--json").stdout)
    assert not any(c["human"] for c in listed["labels"])


def _yolo_files(folder):
    return {
        str(p.relative_to(folder)): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "data.yaml"
    }


def test_yolo_round_trip_with_boxes_is_exact(built, lib, tmp_path):
    one, two = images(built)[:2]
    w, h = Image.open(one).size
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", f"1,2,{w // 2},{h // 3}")
    cli(lib, "labels", "set", str(two), "--as", "nose", "--box", f"7,9,{w - 3},{h - 5}")
    first = tmp_path / "first"
    cli(lib, "labels", "export", str(first), "--format", "yolo")
    fresh = tmp_path / "fresh"
    run_cli("index", str(built / "photos"), "--library", str(fresh), "-q")
    done = json.loads(cli(fresh, "labels", "import", str(first), "--json").stdout)
    assert done["taken"] == 8 and done["boxes_new"] == 2 and done["rejected"] == []
    second = tmp_path / "second"
    cli(fresh, "labels", "export", str(second), "--format", "yolo")
    assert _yolo_files(first) == _yolo_files(second)
    assert [b["box"] for b in boxes_of(fresh, one)] == [[1, 2, w // 2, h // 3]]


def test_bad_yolo_rows_are_named_and_strict_imports_nothing(built, lib, tmp_path):
    one = images(built)[0]
    out = tmp_path / "yolo"
    cli(lib, "labels", "export", str(out), "--format", "yolo")
    label_file = out / "labels" / one.parent.name / f"{one.stem}.txt"
    rel = f"labels/{one.parent.name}/{one.stem}.txt"
    label_file.write_text(
        label_file.read_text()
        + "0 0.5 0.5 0.2\n"  # row 2: four fields
        + "9 0.5 0.5 0.2 0.2\n"  # row 3: no class 9
        + "0 0.5 0.5 0 0.2\n"  # row 4: no area
        + "0 0.9 0.5 0.4 0.2\n"  # row 5: outside
        + "0 x 0.5 0.4 0.2\n"  # row 6: not a number
    )
    (out / "labels" / "stray.txt").write_text("0 0.5 0.5 1 1\n")
    fresh = tmp_path / "fresh"
    run_cli("index", str(built / "photos"), "--library", str(fresh), "-q")
    proc = cli(fresh, "labels", "import", str(out), "--strict", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for words in (
        f"{rel} row 2: a row is `class cx cy w h`",
        f"{rel} row 3: unknown class 9 (classes.txt has 2)",
        f"{rel} row 4: the box has no area",
        f"{rel} row 5: the box lies outside its image",
        f"{rel} row 6: cx cy w h must be numbers",
        "labels/stray.txt: no image of images.txt has this label file",
    ):
        assert words in proc.stderr, (words, proc.stderr)
    assert "nothing imported (--strict)" in proc.stdout
    listed = json.loads(cli(fresh, "labels", "list", "--json").stdout)
    assert not any(c["human"] for c in listed["labels"])  # nothing half-imported
    (tmp_path / "empty").mkdir()
    proc = cli(fresh, "labels", "import", str(tmp_path / "empty"), check=False)
    assert proc.returncode == 1 and "not a YOLO folder: it has no classes.txt" in proc.stderr


def test_an_export_says_which_stale_boxes_it_left_out(built, tmp_path):
    """A box drawn on content the image no longer has is no annotation of it: exports
    leave it out, and say so (a backup must not lose it without a word)."""
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    shutil.copytree(built / "photos", photos)
    run_cli("index", str(photos), "--library", str(lib), "-q")
    one = sorted(photos.rglob("*.jpg"))[0]
    cli(lib, "labels", "set", str(one), "--as", "ear", "--box", "2,3,40,50")
    fresh = cli(lib, "labels", "export", str(tmp_path / "a.json"), "--format", "coco")
    assert "stale" not in fresh.stderr
    picture = Image.open(one).convert("RGB")
    picture.paste((255, 0, 0), (0, 0, 30, 30))  # the image changes: the box is stale
    picture.save(one)
    run_cli("index", str(photos), "--library", str(lib), "-q")
    out = cli(lib, "labels", "export", str(tmp_path / "b.json"), "--format", "coco")
    assert "left out 1 stale box" in out.stderr and "labels boxes PATH" in out.stderr
    before = json.loads((tmp_path / "a.json").read_text())["annotations"]
    after = json.loads((tmp_path / "b.json").read_text())["annotations"]
    assert [a.get("bbox") for a in before].count([2, 3, 38, 47]) == 1
    assert [a.get("bbox") for a in after].count([2, 3, 38, 47]) == 0
