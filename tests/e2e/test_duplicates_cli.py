"""The real `lookalike duplicates` CLI and the Python API over a small real library."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest
from PIL import Image

from tests.support.cli import run_cli
from tests.support.data import dev_images


def _copy(src, dest, scale: float, quality: int, crop: float = 0.0) -> None:
    image = Image.open(src).convert("RGB")
    w, h = image.size
    image = image.crop((int(crop * w), int(crop * h), int(w - crop * w), int(h - crop * h)))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    dest.write_bytes(buf.getvalue())


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("duplicates-cli")
    photos = root / "photos"
    photos.mkdir()
    sources = dev_images(4, 2)
    for src in sources:
        shutil.copy(src, photos / f"{src.parent.name}-{src.name}")
    a, b = (photos / f"{s.parent.name}-{s.name}" for s in (sources[0], sources[4]))
    _copy(a, photos / "copy-a-small.jpg", 0.7, 40)
    _copy(a, photos / "copy-a-cropped.jpg", 0.9, 50, crop=0.04)
    _copy(b, photos / "copy-b.jpg", 0.8, 50)
    library = root / "library"
    run_cli("index", str(photos), "--library", str(library), "--quiet")
    return {"library": library, "a": str(a), "b": str(b), "photos": photos}


def _groups(lib, *extra):
    proc = run_cli("duplicates", "--library", str(lib["library"]), "--json", *extra)
    return json.loads(proc.stdout)


def test_copies_are_grouped_with_their_originals(lib):
    doc = _groups(lib)
    assert 0 < doc["threshold"] <= 1
    groups = [{m["path"] for m in g["members"]} for g in doc["groups"]]
    photos = lib["photos"]
    a_group = {lib["a"], str(photos / "copy-a-small.jpg"), str(photos / "copy-a-cropped.jpg")}
    assert groups[0] == a_group  # largest first
    assert {lib["b"], str(photos / "copy-b.jpg")} in groups
    first = doc["groups"][0]
    assert first["size"] == 3 and first["members"][0]["score"] == 1.0


def test_verification_keeps_look_alikes_out_where_the_semantic_mode_groups_them(lib):
    loose = _groups(lib, "--threshold", "0.3")
    assert loose["mode"] == "verified" and sum(g["size"] for g in loose["groups"]) == 5
    semantic = _groups(lib, "--look-alikes", "--threshold", "0.3")
    assert semantic["mode"] == "look-alikes" and sum(g["size"] for g in semantic["groups"]) > 5
    # --threshold bounds the vector candidates; the perceptual hashes still propose theirs
    # (each image's 2 nearest), so fewer pairs are verified, and only copies group
    strict = _groups(lib, "--threshold", "1.0")
    assert strict["candidates"] < loose["candidates"]
    assert all(m["kind"] != "" for g in strict["groups"] for m in g["members"])
    assert sum(g["size"] for g in strict["groups"]) <= 5


def test_each_member_says_how_it_matches_the_one_to_keep(lib):
    first = _groups(lib)["groups"][0]
    best, *copies = first["members"]
    assert first["keep"] == best["id"] and best["kind"] == "best" and best["path"] == lib["a"]
    kinds = {m["path"].rsplit("/", 1)[1]: m["kind"] for m in copies}
    assert kinds == {"copy-a-small.jpg": "resized", "copy-a-cropped.jpg": "cropped"}
    assert all(m["inliers"] >= 15 and m["width"] < best["width"] for m in copies)


def test_text_output_and_a_second_pass_verifies_nothing_again(lib):
    _groups(lib)
    out = run_cli("duplicates", "--library", str(lib["library"])).stdout.splitlines()
    assert out[0].startswith("2 groups of copies (5 images; ")
    assert re.search(r", 0 verified now, \d+ not needed\)$", out[0])
    assert out[1] == "group 1: 3 images" and out[2].endswith("(keep)")


def test_look_alikes_text_output(lib):
    out = run_cli("duplicates", "--library", str(lib["library"]), "--look-alikes").stdout
    assert out.startswith("2 groups of look-alikes (5 images) at threshold 0.86")


@pytest.mark.parametrize("bad", ["0", "-0.2", "1.01", "nan"])
def test_bad_threshold_is_one_line_and_non_zero(lib, bad):
    proc = run_cli("duplicates", "--library", str(lib["library"]), "--threshold", bad, check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "(0, 1]" in lines[0]


def test_missing_library_is_one_line(tmp_path):
    proc = run_cli("duplicates", "--library", str(tmp_path / "nope"), check=False)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "no Lookalike library" in proc.stderr


def test_python_api(lib):
    from lookalike import search

    with search.open_library(lib["library"]) as api:
        copies = api.copy_groups()
        assert isinstance(copies, search.CopyPass) and isinstance(
            copies.groups[0], search.CopyGroup
        )
        assert copies.groups[0].size == 3 and isinstance(
            copies.groups[0].members[0], search.CopyMember
        )
        groups = api.duplicates()
        assert isinstance(groups[0], search.DuplicateGroup)
        assert groups[0].size == 3 and isinstance(groups[0].members[0], search.DuplicateMember)
        hits = api.search(lib["photos"] / "copy-b.jpg", k=2)
        assert isinstance(hits[0], search.SearchResult)
        assert {h.path for h in hits} == {lib["b"], str(lib["photos"] / "copy-b.jpg")}
        with pytest.raises(search.BadQuery):
            api.duplicates(threshold=2.0)


def test_a_library_without_vectors_is_one_line(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"not an image")
    library = tmp_path / "library"
    run_cli("index", str(photos), "--library", str(library), "--quiet", check=False)
    proc = run_cli("duplicates", "--library", str(library), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no images yet" in lines[0]


def test_verdicts_of_another_verifier_version_are_verified_anew(lib):
    from lookalike import search
    from lookalike.indexer.store.catalog import Catalog
    from lookalike.search.copy_groups import VERIFIER, VERIFIER_KEY

    with search.open_library(lib["library"]) as api:
        first = api.copy_groups()
        assert api.copy_groups().verified == 0  # stored verdicts, same verifier
        catalog = Catalog(api.library.catalog.path)
        try:
            assert catalog.get_meta(VERIFIER_KEY) == VERIFIER
            with catalog.transaction() as conn:
                catalog.set_meta(VERIFIER_KEY, "an older one", conn)
            again = api.copy_groups()
            assert again.candidates > 0 and again.verified == again.candidates
            assert again.groups == first.groups
            assert catalog.get_meta(VERIFIER_KEY) == VERIFIER
        finally:
            catalog.close()
        assert api.copy_groups().verified == 0
