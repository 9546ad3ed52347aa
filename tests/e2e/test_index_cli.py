"""The real `lookalike index/search/info` CLI over real and unusual files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest
from PIL import Image

from tests.support.cli import run_cli
from tests.support.data import DATA, dev_images

VALID = [
    "cmyk.jpg",
    "gray16.png",
    "palette.png",
    "la.png",
    "rgba.png",
    "anim.gif",
    "rotated.jpg",
    "pic.webp",
    "pic.bmp",
    "pic.tiff",
]
BAD = {
    "empty.jpg": "empty file",
    "text.jpg": "not a readable image",
    "page.png": "not a readable image",
    "bomb.png": "too large",
}


def _make_weird(folder, sources):
    folder.mkdir()
    base = [Image.open(p).convert("RGB") for p in sources]
    base[0].convert("CMYK").save(folder / "cmyk.jpg")
    gray = base[1].convert("L").resize((300, 200))
    Image.frombytes("I;16", gray.size, bytes(b for v in gray.tobytes() for b in (0, v))).save(
        folder / "gray16.png"
    )
    base[2].convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png", transparency=0)
    base[3].convert("LA").save(folder / "la.png")
    rgba = base[4].convert("RGBA")
    rgba.putalpha(200)
    rgba.save(folder / "rgba.png")
    base[5].save(folder / "anim.gif", save_all=True, append_images=[base[6]], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 6
    base[7].transpose(Image.ROTATE_90).save(folder / "rotated.jpg", exif=exif)
    base[8].save(folder / "pic.webp")
    base[9].save(folder / "pic.bmp")
    base[10].save(folder / "pic.tiff")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is text, not a picture\n")
    (folder / "page.png").write_text("<html><body>hello</body></html>")
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")  # 400 megapixels
    (folder / "x.jpg").mkdir()  # a directory with an image name
    os.symlink(folder, folder / "loop")  # a symlink loop
    os.symlink(folder / "missing.jpg", folder / "dangling.jpg")
    os.symlink(folder / "cycB", folder / "cycA")  # two links that lead to each other
    os.symlink(folder / "cycA", folder / "cycB")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("index-cli")
    photos = root / "photos"
    for src in dev_images(3, 4):
        (photos / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, photos / src.parent.name / src.name)
    _make_weird(root / "weird", dev_images(11, 1))
    library = root / "library"
    proc = run_cli(
        "index",
        str(photos),
        str(root / "weird"),
        "--library",
        str(library),
        "--labels-from-folders",
        "--json",
    )
    return {"root": root, "photos": photos, "library": library, "summary": json.loads(proc.stdout)}


def _search(lib, *queries, k=3):
    out = run_cli(
        "search", *map(str, queries), "--library", str(lib["library"]), "-k", str(k), "--json"
    )
    return json.loads(out.stdout)


def test_index_reports_added_and_skipped(lib):
    s = lib["summary"]
    assert s["added"] == 12 + len(VALID)
    reasons = {os.path.basename(x["path"]): x["reason"] for x in s["skipped"]}
    for name, reason in BAD.items():
        assert reason in reasons[name], reasons
    assert "dangling" in reasons["dangling.jpg"]
    assert "walked already" in reasons["loop"]  # reported, and walked once
    assert reasons["cycA"] == reasons["cycB"] == "symbolic link loop"
    assert "x.jpg" not in reasons  # a directory is walked, not read


def test_info_lists_images_and_errors(lib):
    info = json.loads(run_cli("info", "--library", str(lib["library"]), "--json").stdout)
    assert info["images"] == 12 + len(VALID)
    assert {os.path.basename(e["path"]) for e in info["errors"]} == set(BAD)
    assert info["model"] == "efficientnet-lite0"
    # Folder labels come from sub-folders; files directly in a given root get none.
    assert info["labels"]["classes"] == {p.name: 4 for p in lib["photos"].iterdir()}
    assert info["bytes"] > 0 and info["index"]["pending"] == 0


def test_every_indexed_image_finds_itself_first(lib):
    queries = sorted(lib["photos"].rglob("*.jpg")) + [lib["root"] / "weird" / n for n in VALID]
    results = _search(lib, *queries)
    assert [r["query"] for r in results] == [str(q) for q in queries]
    for r, q in zip(results, queries, strict=True):
        best = r["results"][0]
        assert best["path"] == str(q.absolute())
        assert best["score"] > 0.999
        assert r["results"][0]["score"] >= r["results"][1]["score"]


def test_rerun_changes_nothing(lib):
    out = run_cli(
        "index",
        str(lib["photos"]),
        str(lib["root"] / "weird"),
        "--library",
        str(lib["library"]),
        "--json",
    )
    s = json.loads(out.stdout)
    assert (s["added"], s["updated"], s["moved"], s["removed"]) == (0, 0, 0, 0)
    assert s["unchanged"] == 12 + len(VALID)
    # the files that failed before are not read again, and say so
    failed = [k for k in s["skipped"] if "not a readable image" in k["reason"]]
    assert failed and all("--retry-errors" in k["reason"] for k in failed)


def test_rename_keeps_id_and_label_delete_removes_edit_updates(lib):
    photos = lib["photos"]
    first_class = sorted(photos.iterdir())[0]
    original = sorted(first_class.glob("*.jpg"))[0]
    before = _search(lib, original, k=1)[0]["results"][0]
    moved = photos / "renamed-elsewhere.jpg"
    original.rename(moved)
    gone = sorted(first_class.glob("*.jpg"))[0]
    gone.unlink()
    edited = sorted(first_class.glob("*.jpg"))[0]
    Image.open(dev_images(20, 1)[-1]).convert("RGB").save(edited)

    out = run_cli("index", str(photos), "--library", str(lib["library"]), "--json")
    s = json.loads(out.stdout)
    assert (s["added"], s["moved"], s["removed"], s["updated"]) == (0, 1, 1, 1)

    after = _search(lib, moved, edited, k=1)
    assert after[0]["results"][0]["id"] == before["id"]
    assert after[0]["results"][0]["path"] == str(moved)
    assert after[1]["results"][0]["path"] == str(edited)
    assert after[1]["results"][0]["score"] > 0.999
    con = sqlite3.connect(lib["library"] / "catalog.sqlite")
    label = con.execute("SELECT label FROM labels WHERE image_id = ?", (before["id"],)).fetchone()
    assert label == (first_class.name,)
    assert (
        con.execute("SELECT COUNT(*) FROM images WHERE path = ?", (str(gone),)).fetchone()[0] == 0
    )


def test_copy_reuses_the_vector(lib, tmp_path):
    src = sorted(lib["photos"].rglob("*.jpg"))[-1]
    copy = lib["photos"] / "copy-of-it.jpg"
    shutil.copy(src, copy)
    out = run_cli("index", str(lib["photos"]), "--library", str(lib["library"]), "--json")
    s = json.loads(out.stdout)
    assert s["copied"] == 1 and s["added"] == 0
    hits = _search(lib, copy, k=2)[0]["results"]
    assert {h["path"] for h in hits} == {str(src), str(copy)}


def test_bad_queries_and_options_are_one_line_errors(lib, tmp_path):
    lib_arg = ["--library", str(lib["library"])]
    not_image = tmp_path / "note.jpg"
    not_image.write_text("hello")
    for args in (
        ["search", str(not_image), *lib_arg],
        ["search", str(tmp_path / "nope.jpg"), *lib_arg],
        ["search", str(sorted(lib["photos"].rglob("*.jpg"))[0]), "--box", "0,0,0,10", *lib_arg],
        ["search", str(sorted(lib["photos"].rglob("*.jpg"))[0]), "--box", "0,0,9999,10", *lib_arg],
        ["info", "--library", str(tmp_path / "no-library-here")],
    ):
        proc = run_cli(*args, check=False)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_a_few_labels_per_folder_and_none_for_distractors(tmp_path):
    photos = tmp_path / "photos"
    for src in dev_images(3, 4):
        (photos / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, photos / src.parent.name / src.name)
    (photos / "distractors").mkdir()
    for src in sorted((DATA / "distractors").glob("*.jpg"))[:2]:
        shutil.copy(src, photos / "distractors" / src.name)
    args = ["index", str(photos), "--library", str(tmp_path / "lib"), "--labels-from-folders"]
    few = ["--labels-per-class", "2", "--unlabelled-folder", "distractors"]
    line = run_cli(*args, *few).stdout.strip().splitlines()[-1]
    assert "14 added" in line and "images/s" in line
    assert line.endswith(
        "6 labelled from folders (2 per class; distractors left unlabelled); embedded on cpu"
    ), line
    info = json.loads(run_cli("info", "--library", str(tmp_path / "lib"), "--json").stdout)
    assert info["labels"]["classes"] == {p.parent.name: 2 for p in dev_images(3, 1)}
    again = run_cli(*args, *few).stdout.strip().splitlines()[-1]
    assert "images/s" not in again and "0 copies" in again  # nothing embedded: no rate
    wrong = run_cli(
        "index",
        str(photos),
        "--library",
        str(tmp_path / "lib"),
        "--labels-per-class",
        "2",
        check=False,
    )
    assert wrong.returncode != 0 and "go with --labels-from-folders" in wrong.stderr
