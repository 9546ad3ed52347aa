"""The real `lookalike labels/tag/evaluate` CLI over a small slice of the dev data."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import asdict

import pytest

from lookalike.classifier.tagging.proto_head import ProtoSettings
from tests.support.cli import run_cli
from tests.support.data import dev_images

KNOWN = ("Faces", "Leopards", "accordion")  # three labels each
NOVEL = "anchor"  # never labelled
LABELS_PER_CLASS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    """A library of 4 classes x 8 images, indexed once, without labels."""
    root = tmp_path_factory.mktemp("tagging-cli")
    images = dev_images(classes=4, per_class=8)
    assert {p.parent.name for p in images} == {*KNOWN, NOVEL}
    run_cli("index", *map(str, images), "--library", str(root / "lib"), "-q")
    return root / "lib", images


@pytest.fixture
def lib(built, tmp_path):
    """A fresh copy of the built library for each test."""
    source, images = built
    shutil.copytree(source, tmp_path / "lib")
    return tmp_path / "lib", images


def cli(lib_dir, *args, check=True):
    return run_cli(*args, env={"LOOKALIKE_LIBRARY": str(lib_dir)}, check=check)


def labelled(images):
    out = []
    for cls in KNOWN:
        out += [(str(p), cls) for p in images if p.parent.name == cls][:LABELS_PER_CLASS]
    return out


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def test_tag_needs_two_labelled_classes_and_suggests_instead(lib):
    lib_dir, images = lib
    proc = cli(lib_dir, "tag", check=False)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "at least two classes" in proc.stderr and "--suggest" in proc.stderr
    cli(lib_dir, "labels", "set", str(images[0]), "--as", "Faces")
    assert "has 1" in cli(lib_dir, "tag", check=False).stderr
    doc = json.loads(cli(lib_dir, "tag", "--suggest", "--json").stdout)
    assert doc["source"] == "imagenet"
    assert len(doc["images"]) == len(images) - 1  # the labelled one is left out
    for entry in doc["images"]:
        scores = [s["score"] for s in entry["suggestions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    accordion = [e for e in doc["images"] if "/accordion/" in e["path"]]
    assert sum(e["suggestions"][0]["label"] == "accordion" for e in accordion) >= 6


def test_tag_on_an_empty_library(tmp_path):
    (tmp_path / "empty").mkdir()
    run_cli("index", str(tmp_path / "empty"), "--library", str(tmp_path / "lib"), "-q")
    proc = cli(tmp_path / "lib", "tag", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: the library has no images; index a folder first (lookalike index FOLDER)"
    ]


def test_import_report_then_tag_json(lib, tmp_path):
    lib_dir, images = lib
    good = labelled(images)
    rows = good + [
        (good[0][0], good[0][1]),  # duplicate
        (str(tmp_path / "missing.jpg"), "Faces"),  # unknown path
        (str(images[-1]), ""),  # empty label
        (str(images[-2]), "anchor<script>"),  # odd characters
    ]
    proc = cli(lib_dir, "labels", "import", str(write_csv(tmp_path / "l.csv", rows)), check=False)
    assert proc.returncode == 1  # some rows were not taken...
    assert "took 9 rows (9 new labels" in proc.stdout  # ...but the good ones were
    assert re.search(r"line 11: not taken: duplicate of line 2", proc.stderr)
    assert "line 12: not taken: unknown path" in proc.stderr
    assert "line 13: not taken: empty label" in proc.stderr
    assert "line 14: not taken: odd characters '<' '>'" in proc.stderr

    before = cli(lib_dir, "labels", "export").stdout
    results = json.loads(cli(lib_dir, "tag", "--json").stdout)
    assert cli(lib_dir, "labels", "export").stdout == before  # human labels untouched
    human = {p for p, _ in good}
    assert {r["path"] for r in results} == {str(p) for p in images} - human
    for r in results:
        assert set(r) == {"path", "label", "confidence"}
        assert r["label"] in (None, *KNOWN)
        assert 0.0 <= r["confidence"] <= 1.0
    known = [r for r in results if r["path"].split("/")[-2] in KNOWN]
    right = sum(r["label"] == r["path"].split("/")[-2] for r in known)
    assert right >= 0.8 * len(known)
    novel = [r for r in results if f"/{NOVEL}/" in r["path"]]
    assert sum(r["label"] is None for r in novel) >= 0.75 * len(novel)

    counts = json.loads(cli(lib_dir, "labels", "list", "--json").stdout)
    assert counts["head"] == "proto"  # the default head
    assert {c["label"]: c["human"] for c in counts["labels"]} == dict.fromkeys(KNOWN, 3)
    predicted = sum(c["predicted"] for c in counts["labels"]) + counts["unknown"]
    assert predicted == len(results)
    info = json.loads(cli(lib_dir, "info", "--json").stdout)
    assert info["tags"]["images"] == len(results)
    assert info["tags"]["unknown"] == sum(r["label"] is None for r in results)
    assert info["tagging"]["head"] == "proto" and info["tagging"]["labelled"] == 9
    assert 0 <= info["tagging"]["validation"]["known_accuracy"] <= 1
    # the run records the settings its head ran with
    assert info["tagging"]["settings"] == asdict(ProtoSettings())

    # A stricter threshold only turns tags into unknowns.
    strict = json.loads(cli(lib_dir, "tag", "--json", "--min-confidence", "0.99").stdout)
    assert sum(r["label"] is None for r in strict) >= sum(r["label"] is None for r in results)
    # ... and its held-out estimate is of the answers at that threshold: none at 1.
    before = info["tagging"]["replay"] or info["tagging"]["validation"]
    cli(lib_dir, "tag", "--min-confidence", "1")
    tagging = json.loads(cli(lib_dir, "info", "--json").stdout)["tagging"]
    after = tagging["replay"] or tagging["validation"]
    assert before["known_accuracy"] > 0 and after["known_accuracy"] == 0
    assert after["novel_unknown"] == 1


def test_set_remove_and_unknown_paths(lib, tmp_path):
    lib_dir, images = lib
    anchors = [p for p in images if p.parent.name == NOVEL]
    out = cli(lib_dir, "labels", "set", str(anchors[0].parent), "--as", "anchor").stdout
    assert "labelled 8 images as 'anchor' (8 changed)" in out
    proc = cli(
        lib_dir, "labels", "set", str(images[0]), str(tmp_path / "x.jpg"), "--as", "a", check=False
    )
    assert proc.returncode == 1 and "not in the library" in proc.stderr
    assert "nothing was changed" in proc.stderr
    proc = cli(lib_dir, "labels", "set", str(images[0]), "--as", "a/b", check=False)
    assert proc.returncode == 1 and "odd characters '/'" in proc.stderr
    out = cli(lib_dir, "labels", "remove", *map(str, anchors[:3]), str(images[0])).stdout
    assert "removed 3 labels (1 of the images had none)" in out
    listed = json.loads(cli(lib_dir, "labels", "list", "--json").stdout)
    assert listed["labels"] == [{"label": "anchor", "human": 5, "predicted": 0}]
    exported = cli(lib_dir, "labels", "export", str(tmp_path / "out.csv")).stderr
    assert "wrote 5 rows" in exported
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "path,label,origin,at"


def test_evaluate_small_classes_json_and_report(lib, tmp_path):
    lib_dir, images = lib
    cli(lib_dir, "labels", "import", str(write_csv(tmp_path / "l.csv", labelled(images))))
    report = tmp_path / "report.html"
    proc = cli(
        lib_dir,
        "evaluate",
        "--folds",
        "5",
        "--heads",
        "knn,linear",
        "--json",
        "--report",
        str(report),
    )
    doc = json.loads(proc.stdout)
    assert {n["class"] for n in doc["notes"]} == set(KNOWN)
    assert all("tested in 3 of 5 folds" in n["note"] for n in doc["notes"])
    assert set(doc["heads"]) == {"knn", "linear"}
    for r in doc["heads"].values():
        assert r["tested"] == 9 and 0 <= r["accuracy"] <= 1
        assert [p["labels_per_class"] for p in r["learning_curve"]] == [1, 2]
        assert r["open_set"]["novel_images"] > 0
    page = report.read_text()
    assert page.count("data:image/svg+xml;base64,") >= 4
    assert not re.search(r"(src|href)=['\"](http|/|\.)", page)
    text = cli(lib_dir, "evaluate", "--folds", "3", "--heads", "knn").stdout
    assert re.search(r"^knn\s+\d\.\d{3}\s+\d\.\d{3}", text, re.M)
    bad = cli(lib_dir, "evaluate", "--heads", "knn,forest", check=False)
    assert bad.returncode == 2 and "unknown head 'forest'" in bad.stderr


def test_evaluate_shows_the_labels_coverage_before_and_after_tagging(lib, tmp_path):
    lib_dir, images = lib
    cli(lib_dir, "labels", "import", str(write_csv(tmp_path / "l.csv", labelled(images))))
    unlabelled = len(images) - len(KNOWN) * LABELS_PER_CLASS
    args = ("evaluate", "--folds", "3", "--heads", "proto")
    before = json.loads(cli(lib_dir, *args, "--json").stdout)["coverage"]
    assert before["tagged_at"] is None and before["unknown"] == unlabelled
    rows = {c["label"]: c for c in before["labels"]}
    assert set(rows) == set(KNOWN)
    assert all(c["human"] == LABELS_PER_CLASS and c["tagged"] == 0 for c in rows.values())
    assert sum(c["unknown_nearest"] for c in rows.values()) == unlabelled

    tags = json.loads(cli(lib_dir, "tag", "--json").stdout)
    per_label = {cls: sum(t["label"] == cls for t in tags) for cls in KNOWN}
    report = tmp_path / "report.html"
    after = json.loads(cli(lib_dir, *args, "--json", "--report", str(report)).stdout)["coverage"]
    assert after["tagged_at"] is not None
    assert after["unknown"] == sum(t["label"] is None for t in tags)
    rows = {c["label"]: c for c in after["labels"]}
    assert {cls: rows[cls]["tagged"] for cls in KNOWN} == per_label
    assert sum(c["unknown_nearest"] for c in rows.values()) == after["unknown"]
    assert "Coverage on the unlabelled library" in report.read_text()
    text = cli(lib_dir, *args).stdout
    assert re.search(rf"^coverage: {after['unknown']} of {len(images)} images", text, re.M)
    assert re.search(r"^Faces\s+3\s+\d+\s+\d+\s+\d+%$", text, re.M)
