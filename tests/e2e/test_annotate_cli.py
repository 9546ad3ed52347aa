"""The one label rule through the real CLI (folder names, set, CSV), CSV formula
escaping with an exact export/import round trip, and `lookalike labels next`."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images

# Folder names: usable labels of several scripts, one formula-looking label, a refused one.
FOLDERS = ["हिन्दी", "தமிழ்", "كَلْب", "-2", "(x)", "=cmd|calc!A0"]
PER_FOLDER = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("annotate-cli")
    images = dev_images(classes=len(FOLDERS), per_class=PER_FOLDER)
    photos = root / "photos"
    for k, path in enumerate(images):
        target = photos / FOLDERS[k // PER_FOLDER] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    run_cli("index", str(photos), "--labels-from-folders", "-q", "--library", str(root / "lib"))
    return root


@pytest.fixture
def lib(built, tmp_path):
    """A fresh copy of the library (its images stay in the built photos folder)."""
    shutil.copytree(built / "lib", tmp_path / "w" / "lib")
    (tmp_path / "w" / "photos").symlink_to(built / "photos")
    return tmp_path / "w"


def photos(root):
    """The photos folder as the catalog knows it."""
    return (root / "photos").resolve()


def cli(root, *args, check=True):
    return run_cli(*args, env={"LOOKALIKE_LIBRARY": str(root / "lib")}, check=check)


def labels_of(root) -> dict[str, int]:
    doc = json.loads(cli(root, "labels", "list", "--json").stdout)
    return {c["label"]: c["human"] for c in doc["labels"] if c["human"]}


def test_folder_labels_of_every_script_and_the_refused_one(lib):
    assert labels_of(lib) == {name: PER_FOLDER for name in FOLDERS[:-1]}


def test_export_escapes_formulas_and_import_gives_the_same_labels(lib, tmp_path):
    out = tmp_path / "labels.csv"
    cli(lib, "labels", "export", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    cells = {r["label"] for r in rows}
    assert "'-2" in cells and "-2" not in cells  # a spreadsheet shows it as text
    first = {r["path"]: r["label"] for r in rows}
    # Forget every label, import the file: the same labels come back.
    cli(lib, "labels", "remove", str(photos(lib)))
    assert labels_of(lib) == {}
    cli(lib, "labels", "import", str(out))
    again = tmp_path / "again.csv"
    cli(lib, "labels", "export", str(again))
    second = {r["path"]: r["label"] for r in csv.DictReader(io.StringIO(again.read_text()))}
    assert second == first
    assert labels_of(lib) == {name: PER_FOLDER for name in FOLDERS[:-1]}
    # "-" is standard output, as without FILE (not a file named "-")
    out = cli(lib, "labels", "export", "-").stdout
    assert {r["path"]: r["label"] for r in csv.DictReader(io.StringIO(out))} == first


def test_set_normalises_and_matches_case_insensitively(lib):
    photo = next((photos(lib) / "(x)").iterdir())
    cli(lib, "labels", "set", str(photo), "--as", "Ｋａｎｇａｒｏｏ")  # full-width
    others = sorted((photos(lib) / "-2").iterdir())
    out = cli(lib, "labels", "set", str(others[0]), "--as", "kangaroo").stdout
    assert "as 'Kangaroo' (1 changed)" in out  # the spelling stored
    assert labels_of(lib)["Kangaroo"] == 2 and "kangaroo" not in labels_of(lib)
    for bad, why in [("a$x$", "odd characters '$'"), ("--", "at least one letter or digit")]:
        proc = cli(lib, "labels", "set", str(photo), "--as", bad, check=False)
        assert proc.returncode == 1 and why in proc.stderr
        assert "Traceback" not in proc.stderr


def test_labels_next_lists_unlabelled_images_with_suggestions(lib):
    bad = photos(lib) / "=cmd|calc!A0"
    proc = cli(lib, "labels", "next", "-n", "5", "--json")
    queue = json.loads(proc.stdout)
    assert {q["path"] for q in queue} == {str(p) for p in bad.iterdir()}
    assert all(set(q) == {"id", "path", "suggestions"} for q in queue)
    assert all(q["suggestions"] and 0 <= q["suggestions"][0]["confidence"] <= 1 for q in queue)
    text = cli(lib, "labels", "next", "-n", "2").stdout.splitlines()
    assert len(text) == 2 and text[0].split("\t")[0] == queue[0]["path"]
