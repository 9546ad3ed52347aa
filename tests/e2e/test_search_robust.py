"""The real `lookalike search`: edited copies find their originals; regions; bad input."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.support.cli import run_cli
from tests.support.data import dev_images


def save_jpeg(image: Image.Image, path, quality: int = 90) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())
    return str(path)


def crop_fraction(img: Image.Image, x0: float, y0: float, x1: float, y1: float) -> Image.Image:
    w, h = img.size
    return img.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))


def hue_shift(img: Image.Image, shift: int) -> Image.Image:
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


# Two edits each, as people pass photos around; the sources are same-class neighbours of
# other library images, so the first stage alone does not always rank them first.
EDITS = {
    "crop+mirror": lambda im: ImageOps.mirror(crop_fraction(im, 0.3, 0.2, 0.85, 0.8)),
    "grayscale+rotate": lambda im: im.convert("L").convert("RGB").rotate(12, Image.BICUBIC),
    "resize+jpeg": lambda im: im.resize((im.width // 4, im.height // 4), Image.BICUBIC),
    "colour+crop": lambda im: hue_shift(crop_fraction(im, 0.0, 0.25, 0.7, 1.0), 30),
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-robust")
    photos = root / "photos"
    photos.mkdir()
    sources = dev_images(classes=6, per_class=5)
    for src in sources:
        shutil.copy(src, photos / f"{src.parent.name}-{src.name}")
    library = root / "library"
    run_cli("index", str(photos), "--library", str(library), "--quiet")
    indexed = sorted(str(p) for p in photos.iterdir())
    return {"library": str(library), "photos": indexed, "root": root}


def search_json(lib, *args: str) -> list[dict]:
    proc = run_cli("search", "--library", lib["library"], "--json", *args)
    return json.loads(proc.stdout)


def test_edited_copies_find_their_originals_first(lib):
    queries, expected = [], []
    for i, (name, edit) in enumerate(EDITS.items()):
        source = lib["photos"][i * 7 + 1]  # one per class, not the first of each
        image = Image.open(source).convert("RGB")
        quality = 15 if "jpeg" in name else 90
        queries.append(save_jpeg(edit(image), lib["root"] / f"copy-{name}.jpg", quality))
        expected.append(source)
    doc = search_json(lib, "-k", "5", *queries)
    assert [d["query"] for d in doc] == queries
    for d, source in zip(doc, expected, strict=True):
        assert d["box"] is None
        assert d["results"][0]["path"] == source, (d["query"], d["results"][:2])
        assert d["results"][0]["match"] == "copy"
        assert d["results"][-1]["match"] is None  # a look-alike of another photo


def test_the_plain_first_stage_still_answers(lib):
    doc = search_json(lib, "-k", "4", "--no-rerank", lib["photos"][0])
    assert len(doc[0]["results"]) == 4
    assert [r["match"] for r in doc[0]["results"]] == [None] * 4  # nothing was checked
    text = run_cli("search", "--library", lib["library"], "-k", "2", lib["photos"][0]).stdout
    assert text.splitlines()[1].endswith(f"{lib['photos'][0]}  (copy)")  # itself
    assert doc[0]["results"][0]["path"] == lib["photos"][0]  # itself, score 1


def test_a_box_searches_that_region_and_is_reported(lib):
    source = lib["photos"][12]
    w, h = Image.open(source).size
    box = [w // 4, h // 4, w - w // 5, h - h // 6]
    doc = search_json(lib, "-k", "3", "--box", ",".join(map(str, box)), source)
    assert doc[0]["box"] == box
    assert doc[0]["results"][0]["path"] == source  # a crop of itself: verified


def test_object_search_localises_and_reports_the_box(lib):
    # an indexed photo pasted small into a larger plain canvas
    source = lib["photos"][20]
    photo = Image.open(source).convert("RGB")
    canvas = Image.new("RGB", (photo.width * 3, photo.height * 3), (220, 220, 215))
    canvas.paste(photo, (photo.width * 2 - 10, photo.height // 2))
    query = save_jpeg(canvas, lib["root"] / "pasted.jpg")
    doc = search_json(lib, "-k", "3", "--object", query)
    x0, y0, x1, y1 = doc[0]["box"]
    assert 0 <= x0 < x1 <= canvas.width and 0 <= y0 < y1 <= canvas.height
    assert x1 > photo.width * 2 and x0 < photo.width * 3 - 10  # overlaps the pasted photo
    assert (x1 - x0) * (y1 - y0) < canvas.width * canvas.height / 2
    assert doc[0]["results"][0]["path"] == source


def library_state(path: str) -> dict:
    from pathlib import Path

    # SQLite readers touch the shared-memory file; everything else must stay as it was
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in Path(path).iterdir()
        if not p.name.endswith("-shm")
    }


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda lib, tmp: [str(_write(tmp / "notes.jpg", b"not an image"))], "not a readable"),
        (lambda lib, tmp: [str(_write(tmp / "empty.jpg", b""))], "empty file"),
        (lambda lib, tmp: ["--box", "0,0,5000,10", lib["photos"][0]], "outside"),
        (lambda lib, tmp: ["--box", "10,10,10,40", lib["photos"][0]], "zero or negative area"),
        (lambda lib, tmp: ["--object", "--box", "0,0,5,5", lib["photos"][0]], "--object"),
    ],
)
def test_bad_queries_fail_with_one_line_and_write_nothing(lib, tmp_path, make_args, message):
    before = library_state(lib["library"])
    proc = run_cli("search", "--library", lib["library"], *make_args(lib, tmp_path), check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert library_state(lib["library"]) == before


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
