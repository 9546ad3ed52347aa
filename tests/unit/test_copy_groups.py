"""Verified duplicate groups: stars around the image to keep, the pixel check, bad input."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from lookalike.indexer.store.catalog import ImageRow
from lookalike.search.copy_groups import PairVerifier, keep_order, star_groups
from lookalike.search.pixels import agreement, agreements
from tests.unit.test_rerank import edited, scene


def row(i: int, w: int = 300, h: int = 200, size: int = 20_000, path: str = "") -> ImageRow:
    return ImageRow(
        id=i, path=path or f"/lib/{i}.jpg", size=size, mtime_ns=0, hash=f"h{i}", width=w, height=h
    )


def test_groups_are_stars_around_the_best_image_never_chains():
    rows = {1: row(1, 600, 400), 2: row(2), 3: row(3, 200, 100)}
    # 2 verifies with 1 and with 3, but 3 not with 1: 3 is not a copy of the best image
    assert star_groups([(1, 2), (2, 3)], rows) == [[1, 2]]
    assert star_groups([(1, 2), (2, 3), (1, 3)], rows) == [[1, 2, 3]]


def test_the_image_to_keep_is_largest_then_least_compressed_then_original_format():
    big, small = row(1, 600, 400), row(2, 300, 200)
    dense, light = row(3, size=40_000), row(4, size=10_000)
    png, jpg = row(5, path="/lib/a.png"), row(6, path="/lib/a.jpg")
    assert sorted([small, big], key=keep_order)[0] == big
    assert sorted([light, dense], key=keep_order)[0] == dense
    assert sorted([jpg, png], key=keep_order)[0] == png


def test_a_mark_to_keep_wins_over_the_automatic_order():
    rows = {1: row(1, 600, 400), 2: row(2), 3: row(3)}
    assert star_groups([(1, 2), (1, 3), (2, 3)], rows, kept={3})[0][0] == 3


def gray(img: Image.Image, side: int = 128) -> np.ndarray:
    img = img.convert("L")
    img.thumbnail((side, side))
    return np.asarray(img)


def test_pixels_agree_for_a_copy_and_not_for_another_picture_or_a_blank():
    shift = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # the identity, at the same scale
    a = gray(scene(1))
    assert agreement(a, 1.0, gray(scene(1).convert("L").convert("RGB")), 1.0, shift) > 0.95
    assert agreement(a, 1.0, gray(scene(2)), 1.0, shift) < 0.5
    blank = np.full_like(a, 255)
    assert agreement(blank, 1.0, blank, 1.0, shift) == 0.0


def test_black_corners_of_a_turned_copy_are_not_held_against_it(tmp_path):
    path = tmp_path / "original.png"
    scene(7).save(path)
    copy = tmp_path / "copy.jpg"
    edited(scene(7)).save(copy)  # cropped, turned 8 degrees (black corners), gray, halved
    rows = {1: row(1, 360, 260, path=str(path)), 2: row(2, 135, 110, path=str(copy))}
    check = PairVerifier(rows)
    try:
        verdict = check.verify([(1, 2)])[(1, 2)]
    finally:
        check.close()
    assert verdict.inliers >= 15 and verdict.kind == "edited"


def test_images_that_cannot_be_verified_never_break_the_pass(tmp_path):
    files = {
        "blank": Image.new("RGB", (300, 200), (255, 255, 255)),
        "tiny": scene(3).resize((6, 4)),
        "strip": scene(3).resize((2000, 3)),
        "mirror": ImageOps.mirror(scene(3)),
    }
    rows = {}
    for i, (name, img) in enumerate(files.items(), start=1):
        img.save(tmp_path / f"{name}.png")
        rows[i] = row(i, *img.size, path=str(tmp_path / f"{name}.png"))
    rows[9] = row(9, path=str(tmp_path / "gone.jpg"))  # unreadable: not on disk
    pairs = [(a, b) for a in rows for b in rows if a < b]
    check = PairVerifier(rows)
    try:
        verdicts = check.verify(pairs)
    finally:
        check.close()
    assert set(verdicts) == set(pairs)
    assert all(v.inliers < 15 for p, v in verdicts.items() if 9 in p or 1 in p)


def test_stored_verdicts_count_only_while_both_files_are_unchanged(tmp_path):
    from lookalike.indexer.store.catalog import Catalog
    from lookalike.indexer.store.duplicate_pairs import known_verdicts, write_verdicts

    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        with catalog.transaction() as conn:
            for i in (1, 2, 3):
                conn.execute(
                    "INSERT INTO images (id, path, size, mtime_ns, hash, width, height, added, "
                    "updated) VALUES (?, ?, 1, 0, ?, 300, 200, 0, 0)",
                    (i, f"/lib/{i}.jpg", f"h{i}"),
                )
        rows = catalog.images([1, 2, 3])
        write_verdicts(catalog, {(1, 2): (40, "resized"), (1, 3): (0, "")}, rows)
        assert known_verdicts(catalog, rows) == {(1, 2): (40, "resized"), (1, 3): (0, "")}
        changed = dict(rows)
        changed[3] = {**rows[3], "hash": "new"}  # image 3's file changed: verify it again
        assert known_verdicts(catalog, changed) == {(1, 2): (40, "resized")}
    finally:
        catalog.close()


def test_a_part_that_moved_disagrees_though_the_whole_agrees():
    """Two photos of one scene a moment apart: the same background, the subject moved."""
    shift = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    before = scene(5)
    after = before.copy()
    after.paste(scene(6).crop((0, 0, 90, 65)), (0, 0))  # a corner changed
    copy = before.convert("L").convert("RGB")  # a copy: every part agrees
    a = gray(before)
    same = agreements(a, 1.0, gray(copy), 1.0, shift)
    moved = agreements(a, 1.0, gray(after), 1.0, shift)
    assert same.whole > 0.95 and same.least_cell > 0.95
    assert moved.whole > 0.9 and moved.least_cell < 0.3  # the whole passes same_picture
