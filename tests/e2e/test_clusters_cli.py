"""lookalike clusters: the real CLI over a small real library (real model, SQLite, FAISS).

Three classes are labelled from folders; unlabelled are a few more images of those
classes and two classes nobody labelled, which the listing must propose first.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from tests.support.cli import run_cli
from tests.support.data import DATA

LABELLED = ("Faces", "Leopards", "accordion")
NOVEL = ("grand_piano", "trilobite")


def _class_of(path: str) -> str:
    return next(c for c in LABELLED + NOVEL if f"{c}_" in path or f"/{c}/" in path)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory, data_dir):
    """(library with unlabelled images, library where every image is labelled)."""
    base = tmp_path_factory.mktemp("clusters")
    for c in LABELLED:
        files = sorted((DATA / "images" / c).glob("*.jpg"))
        (base / "labelled" / c).mkdir(parents=True)
        for f in files[:6]:
            (base / "labelled" / c / f.name).symlink_to(f)
        (base / "unlabelled").mkdir(exist_ok=True)
        for f in files[6:10]:
            (base / "unlabelled" / f"{c}_{f.name}").symlink_to(f)
    for c in NOVEL:
        for f in sorted((DATA / "images" / c).glob("*.jpg"))[:10]:
            (base / "unlabelled" / f"{c}_{f.name}").symlink_to(f)
    lib = base / "lib"
    run_cli("index", str(base / "labelled"), "--labels-from-folders", "--library", str(lib), "-q")
    shutil.copytree(lib, base / "all-labelled")
    run_cli("index", str(base / "unlabelled"), "--library", str(lib), "-q")
    return lib, base / "all-labelled"


def listing(lib, *extra):
    return json.loads(run_cli("clusters", "--library", str(lib), "--json", *extra).stdout)


def labels(lib):
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        return sorted(conn.execute("SELECT image_id, label, origin FROM labels").fetchall())


def fails(*args):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def test_new_classes_come_first_with_names_and_nearest_labels(libraries):
    lib, _ = libraries
    doc = listing(lib)
    assert set(doc) == {"clusters", "noise"}
    keys = {"id", "size", "members", "representatives", "cohesion", "suggested_name"}
    keys |= {"nearest_label", "nearest_label_similarity", "kind"}
    for c in doc["clusters"]:
        assert set(c) == keys
        assert set(c["representatives"]) <= set(c["members"]) and c["size"] == len(c["members"])
    first_two = {frozenset(map(_class_of, c["members"])) for c in doc["clusters"][:2]}
    assert first_two == {frozenset({"grand_piano"}), frozenset({"trilobite"})}
    assert all(c["size"] >= 5 for c in doc["clusters"][:2])  # of 10
    piano = next(c for c in doc["clusters"] if _class_of(c["members"][0]) == "grand_piano")
    assert "piano" in piano["suggested_name"]  # ImageNet's "grand piano"
    assert [c["kind"] for c in doc["clusters"][:2]] == ["new", "new"]
    rest = doc["clusters"][2:]  # the rest: more of the labelled classes, one per label
    assert all(c["kind"] == "label" for c in rest)
    assert len({c["nearest_label"] for c in rest}) == len(rest)
    for c in rest:
        assert c["nearest_label"] == _class_of(c["members"][0])
        assert c["nearest_label_similarity"] > 0.7
    text = run_cli("clusters", "--library", str(lib)).stdout
    assert text.startswith(f"{len(doc['clusters'])} clusters, {len(doc['noise'])} images")


def test_accept_merge_reject_and_stable_ids(libraries, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(libraries[0], lib)
    doc = listing(lib)
    piano, trilobite = sorted(doc["clusters"][:2], key=lambda c: _class_of(c["members"][0]))
    left_out = piano["members"][0]
    run_cli("clusters", "accept", str(piano["id"]), "--as", "piano", "--exclude", left_out,
            "--library", str(lib))  # fmt: skip
    review = [r for r in labels(lib) if r[2] == "review"]
    assert len(review) == piano["size"] - 1 and {r[1] for r in review} == {"piano"}

    again = listing(lib)  # labels changed: re-clustered, the other ids kept
    ids = {c["id"]: c for c in again["clusters"]}
    assert piano["id"] not in ids and trilobite["id"] in ids
    assert set(ids[trilobite["id"]]["members"]) == set(trilobite["members"])
    line = fails("clusters", "accept", str(piano["id"]), "--as", "x", "--library", str(lib))
    assert "already reviewed (accepted as 'piano')" in line

    more_of = next(c for c in again["clusters"] if c["nearest_label"] == "Leopards")
    out = run_cli("clusters", "merge", str(more_of["id"]), "--into", "Leopards",
                  "--library", str(lib), "--json")  # fmt: skip
    assert json.loads(out.stdout)["status"] == "merged"
    run_cli("clusters", "reject", str(trilobite["id"]), "--library", str(lib))
    shown = json.loads(
        run_cli("clusters", "show", str(trilobite["id"]), "--json", "--library", str(lib)).stdout
    )
    assert shown["status"] == "rejected" and shown["members"] == trilobite["members"]
    final = listing(lib, "--min-size", "3")  # re-clusters: rejected images stay apart
    for c in final["clusters"]:
        assert len(set(c["members"]) & set(trilobite["members"])) <= 1


def test_split_gives_natural_parts_never_below_the_min_size(libraries, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(libraries[0], lib)
    first = next(c for c in listing(lib)["clusters"] if c["size"] < 10)  # no two parts of 5
    line = fails("clusters", "split", str(first["id"]), "--library", str(lib))
    assert "cannot be split" in line and "at least 5" in line
    first = listing(lib, "--min-size", "2")["clusters"][0]
    out = json.loads(
        run_cli("clusters", "split", str(first["id"]), "--json", "--library", str(lib)).stdout
    )
    assert len(out) >= 2 and all(p["size"] >= 2 for p in out)
    assert sorted(m for p in out for m in p["members"]) == first["members"]
    text = run_cli("clusters", "--min-size", "2", "--library", str(lib)).stdout
    assert "--min-size 2" in text.splitlines()[0]
    ids = [c["id"] for c in listing(lib, "--min-size", "2")["clusters"]]
    assert first["id"] not in ids and {p["id"] for p in out} <= set(ids)


def test_bad_input_is_one_line_and_changes_nothing(libraries, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(libraries[0], lib)
    cid = str(listing(lib)["clusters"][0]["id"])
    before = labels(lib)
    lib_arg = ("--library", str(lib))
    assert "empty" in fails("clusters", "accept", cid, "--as", " ", *lib_arg)
    assert "already exists" in fails("clusters", "accept", cid, "--as", "faces", *lib_arg)
    assert "no label 'Piano'" in fails("clusters", "merge", cid, "--into", "Piano", *lib_arg)
    assert "no cluster 9999" in fails("clusters", "reject", "9999", *lib_arg)
    line = fails("clusters", "accept", cid, "--as", "x", "--exclude", "/no/such.jpg", *lib_arg)
    assert "not a member" in line
    assert labels(lib) == before
    assert "nothing to cluster" in fails("clusters", "--library", str(libraries[1]))
    assert "no Lookalike library" in fails("clusters", "--library", str(tmp_path / "none"))


def test_tagger_uses_accepted_labels(libraries, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(libraries[0], lib)
    doc = listing(lib)
    piano = next(c for c in doc["clusters"] if _class_of(c["members"][0]) == "grand_piano")
    # The two most central members: the tagger should give them the accepted label (an
    # outlying member may rightly stay "unknown").
    kept_out = piano["representatives"][:2]
    excludes = [a for p in kept_out for a in ("--exclude", p)]
    run_cli("clusters", "accept", str(piano["id"]), "--as", "piano", *excludes, "--library",
            str(lib))  # fmt: skip
    run_cli("tag", "--library", str(lib))
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        tags = dict(
            conn.execute(
                "SELECT i.path, t.label FROM tags t JOIN images i ON i.id = t.image_id"
            ).fetchall()
        )
    assert [tags.get(p) for p in kept_out] == ["piano", "piano"]
