"""Verified duplicate groups: stars around the image to keep, the pixel check, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageOps

from lookalike.indexer.store.catalog import ImageRow
from lookalike.indexer.store.vector_index import VectorIndex
from lookalike.search.copy_groups import (
    ENLARGED,
    SAME_FILE,
    SAME_PARTS,
    VERIFY_OPTIONS,
    PairVerifier,
    Verdict,
    colour_of,
    colours_changed,
    describe,
    encoding_quality,
    keep_order,
    match_kind,
    small_image_pairs,
    star_groups,
)
from lookalike.search.pixels import agreement, agreements, edge_agreements
from lookalike.search.rerank import Reranker, Verification
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


def test_a_crop_either_way_is_cropped_and_the_whole_picture_is_kept():
    """A smaller image showing part of the larger one is "cropped"; a larger image
    showing part of the smaller one enlarged (dev bonsai 0019, cut from 0022 and scaled
    up) is stored as ENLARGED, shown as "cropped", and the smaller image, the whole
    picture, is the one to keep; the whole picture at another size is "resized"."""
    small, large = row(1, 300, 225), row(2, 241, 300)  # areas 67,500 < 72,300

    def kind(scale: float) -> str:
        shift = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
        return match_kind(small, large, Verification(40, False, 1.0, shift), VERIFY_OPTIONS)

    # the small one's feature frame (320 x 240) in the large one's (321 x 400): 0.60 s^2
    assert kind(1.29) == "resized"
    assert kind(0.9) == "cropped"  # the small one shows part of the large one
    assert kind(2.0) == ENLARGED  # the large one shows part of the small one
    rows = {1: small, 2: large}
    assert star_groups([(1, 2)], rows) == [[2, 1]]  # by pixels alone, the crop is kept
    assert star_groups([(1, 2)], rows, inside={2}) == [[1, 2]]
    assert star_groups([(1, 2)], rows, kept={2}, inside={2}) == [[2, 1]]  # a mark wins
    (group,) = describe([[1, 2]], rows, {(1, 2): Verdict(40, ENLARGED)}, lambda ids: np.ones(2))
    assert [m.kind for m in group.members] == ["best", "cropped"]


def test_an_identical_file_is_described_as_such_with_no_match_count():
    rows = {1: row(1), 2: row(2), 3: row(3, 150, 100)}
    verdicts = {(1, 2): Verdict(SAME_FILE, "identical"), (1, 3): Verdict(42, "resized")}
    (group,) = describe([[1, 2, 3]], rows, verdicts, lambda ids: np.ones(len(ids)))
    assert [(m.kind, m.inliers) for m in group.members] == [
        ("best", 0),
        ("identical", 0),
        ("resized", 42),
    ]


def test_the_image_to_keep_is_largest_then_least_compressed_then_original_format():
    big, small = row(1, 600, 400), row(2, 300, 200)
    dense, light = row(3, size=40_000), row(4, size=10_000)
    png, jpg = row(5, path="/lib/a.png"), row(6, path="/lib/a.jpg")
    assert sorted([small, big], key=keep_order)[0] == big
    assert sorted([light, dense], key=keep_order)[0] == dense
    assert sorted([jpg, png], key=keep_order)[0] == png


def test_a_copy_saved_at_a_lower_jpeg_quality_is_not_kept_over_its_original(tmp_path):
    """Of two files of one size, the one of the higher JPEG quality (read from its
    header) is kept, even when the other has more bytes per pixel (a turned copy's
    black corners); a lossless file counts as 100, one that cannot be read as 0."""
    original, copy = tmp_path / "original.jpg", tmp_path / "copy.jpg"
    scene(3).save(original, quality=75)
    scene(3).rotate(8).save(copy, quality=40)
    assert round(encoding_quality(str(original))) == 75
    assert round(encoding_quality(str(copy))) == 40
    assert encoding_quality(str(tmp_path / "a.png")) == 100
    assert encoding_quality(str(tmp_path / "gone.jpg")) == 0
    w, h = scene(3).size
    rows = {
        1: row(1, w, h, size=10_000, path=str(original)),
        2: row(2, w, h, size=12_000, path=str(copy)),  # more bytes per pixel
    }
    quality = {i: encoding_quality(rows[i]["path"]) for i in rows}
    assert star_groups([(1, 2)], rows, quality=quality) == [[1, 2]]
    assert sorted([rows[1], rows[2]], key=keep_order)[0] == rows[2]  # by bytes alone


def test_a_mark_to_keep_wins_over_the_automatic_order():
    rows = {1: row(1, 600, 400), 2: row(2), 3: row(3)}
    assert star_groups([(1, 2), (1, 3), (2, 3)], rows, kept={3})[0][0] == 3


def test_a_small_image_is_paired_with_its_far_larger_neighbours_only():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    vectors = np.stack([base + rng.normal(scale=0.3, size=16) for _ in range(6)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.empty(16)
    index.add(np.arange(1, 7, dtype=np.int64), vectors.astype(np.float32))
    # 1 is small (longer side 200 against a median of 600); 2-5 are larger, 6 smaller
    sizes = {1: (200, 150), 2: (600, 400), 3: (640, 480), 4: (600, 600), 5: (500, 700)}
    rows = {i: row(i, *sizes.get(i, (100, 80))) for i in range(1, 7)}
    rows[6] = row(6, 100, 80)
    pairs = small_image_pairs(index, rows, threshold=-1.0)
    # 1 with every larger image; 6 (the smallest) with all the others; never 2-5 together
    assert pairs == {(1, 2), (1, 3), (1, 4), (1, 5)} | {(i, 6) for i in range(1, 6)}
    # at a quarter of the median only 6 is small (100 against 150); 1 (200) is not
    tiny = small_image_pairs(index, rows, threshold=-1.0, side=0.25)
    assert tiny == {(i, 6) for i in range(1, 6)}
    assert small_image_pairs(index, rows, threshold=1.0) == set()
    assert small_image_pairs(index, {}, threshold=0.4) == set()


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


def test_a_gray_or_hue_shifted_copy_is_edited_a_resized_one_is_not(tmp_path):
    """Verification compares gray levels; the colours say a copy was recoloured."""
    original = scene(11)
    original.save(tmp_path / "original.png")
    half = original.resize((180, 130), Image.Resampling.BILINEAR)
    gray_copy = half.convert("L").convert("RGB")
    copies = {"resized": half, "gray": gray_copy, "hue": recoloured(half, 40)}
    rows = {1: row(1, 360, 260, path=str(tmp_path / "original.png"))}
    for i, (name, img) in enumerate(copies.items(), start=2):
        img.save(tmp_path / f"{name}.png")
        rows[i] = row(i, 180, 130, path=str(tmp_path / f"{name}.png"))
    check = PairVerifier(rows)
    try:
        verdicts = check.verify([(1, 2), (1, 3), (1, 4)])
    finally:
        check.close()
    assert all(v.inliers >= 15 for v in verdicts.values())
    assert [verdicts[p].kind for p in [(1, 2), (1, 3), (1, 4)]] == ["resized", "edited", "edited"]
    # A gray crop of the left half: compared where it lies in the original.
    crop = original.crop((0, 0, 180, 260))
    small, large = row(5, 180, 260), row(1, 360, 260)
    scale = (260 / 320) * (400 / 360)  # its feature frame (221 x 320) in the original's
    seen = Verification(40, False, 1.0, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]))
    gray_crop = crop.convert("L").convert("RGB")
    colours = colour_of(original)
    for img, changed in [(crop, False), (gray_crop, True), (recoloured(crop, 60), True)]:
        found = colours_changed(small, large, seen, colour_of(img), colours, VERIFY_OPTIONS)
        assert found == changed


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
        cropped = check.verify(pairs, crops=True)  # the tiny one, searched as a crop
    finally:
        check.close()
    assert set(verdicts) == set(pairs) == set(cropped)
    assert all(v.inliers < 15 for p, v in verdicts.items() if 9 in p or 1 in p)
    assert all(v.inliers < 15 for p, v in cropped.items() if 9 in p or 1 in p)


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


def test_each_image_is_decoded_once_and_a_small_memory_gives_the_same_verdicts(
    tmp_path, monkeypatch
):
    import lookalike.search.copy_groups as copy_groups

    originals = {i: scene(30 + i) for i in range(1, 5)}
    images = {**originals, 5: originals[1].resize((180, 130)), 6: ImageOps.mirror(originals[2])}
    rows = {}
    for i, img in images.items():
        img.save(tmp_path / f"{i}.jpg", quality=60)
        rows[i] = row(i, *img.size, path=str(tmp_path / f"{i}.jpg"))
    pairs = [(a, b) for a in rows for b in rows if a < b]
    loads: list[str] = []
    real = copy_groups.load_image

    def counting(path, **kw):
        loads.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(copy_groups, "load_image", counting)
    outcomes = []
    for keep in (100, 1):
        loads.clear()
        check = PairVerifier(rows, keep=keep)
        try:
            outcomes.append(check.verify(pairs))
        finally:
            check.close()
        if keep == 100:
            assert sorted(loads) == sorted(r["path"] for r in rows.values())
        else:  # nothing kept but the last image: read again when needed, same answers
            assert len(loads) > len(rows)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][(1, 5)].inliers >= 15 and outcomes[0][(2, 6)].kind == "edited"
    assert all(v.inliers < 15 for p, v in outcomes[0].items() if p not in {(1, 5), (2, 6)})


def test_a_match_whose_pixels_disagree_gives_way_to_the_other_orientation(monkeypatch):
    """A symmetric subject matches plain with many inliers but its pixels disagree: the
    mirrored match (a mirrored copy) is checked as well, and taken when it agrees."""
    import lookalike.search.rerank as rerank

    plain = rerank.LocalFeatures(np.zeros((500, 2), np.float32), np.zeros((500, 32), np.uint8))
    mirrored = rerank.LocalFeatures(plain.points.copy(), plain.descriptors.copy())
    shift = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    pixels = np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)

    def fake_match(query, candidate, ratio, reprojection, least, half_first=0):
        return rerank.Match(80 if query is plain else 40, shift)

    def fake_agreements(query_pixels, qs, cand, cs, transform):
        same = np.array_equal(query_pixels, pixels[:, ::-1])  # only the mirrored agrees
        return (0.99, 0.99) if same else (0.6, 0.5)

    monkeypatch.setattr(rerank, "match_features", fake_match)
    monkeypatch.setattr(rerank, "agreements", fake_agreements)
    query = rerank.QueryFeatures(plain, mirrored, None, pixels)
    found = rerank.Candidate(plain, Image.new("L", (64, 48)), 64 / 48)
    checked = rerank.Reranker(VERIFY_OPTIONS).verify_candidate(query, found)
    assert (checked.inliers, checked.mirrored, checked.agreement) == (40, True, 0.99)
    # search checks mirrored matches only: the clear plain match stands unchecked
    search = rerank.Reranker(rerank.RerankOptions()).verify_candidate(query, found)
    assert (search.inliers, search.mirrored) == (80, False)

    def nobody_agrees(query_pixels, qs, cand, cs, transform):
        return (0.6, 0.5)

    monkeypatch.setattr(rerank, "agreements", nobody_agrees)
    rejected = rerank.Reranker(VERIFY_OPTIONS).verify_candidate(query, found)
    assert rejected.inliers == VERIFY_OPTIONS.min_inliers - 1  # another photo of the scene


def recoloured(img: Image.Image, hue: int) -> Image.Image:
    h, s, v = img.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + hue) % 256), s, v)).convert("RGB")


def test_a_recoloured_copy_agrees_by_its_edges_a_moved_subject_does_not():
    shift = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    original = gray(scene(10))
    copy = gray(recoloured(scene(10), 20))  # red turns darker, green lighter: region by region
    levels, edges = (
        agreements(original, 1.0, copy, 1.0, shift),
        edge_agreements(original, 1.0, copy, 1.0, shift),
    )
    assert levels.whole < VERIFY_OPTIONS.same_picture or levels.least_cell < SAME_PARTS
    assert levels.whole >= VERIFY_OPTIONS.recoloured
    assert edges.whole >= VERIFY_OPTIONS.same_edges
    assert edges.least_cell >= VERIFY_OPTIONS.same_edge_parts
    before = scene(5)
    after = before.copy()
    after.paste(scene(6).crop((0, 0, 90, 65)), (0, 0))  # the subject moved
    moved = edge_agreements(gray(before), 1.0, gray(after), 1.0, shift)
    assert moved.least_cell < VERIFY_OPTIONS.same_edge_parts


def test_the_pass_takes_a_recoloured_copy_only_with_the_edge_check(tmp_path):
    scene(10).save(tmp_path / "original.png")
    recoloured(scene(10), 20).resize((300, 217)).save(tmp_path / "copy.jpg", quality=70)
    rows = {
        1: row(1, 360, 260, path=str(tmp_path / "original.png")),
        2: row(2, 300, 217, path=str(tmp_path / "copy.jpg")),
    }
    found = {}
    for recolour in (VERIFY_OPTIONS.recoloured, 0.0):
        options = replace(VERIFY_OPTIONS, recoloured=recolour)
        check = PairVerifier(rows, Reranker(options))
        try:
            found[recolour] = check.verify([(1, 2)])[(1, 2)]
        finally:
            check.close()
    assert found[VERIFY_OPTIONS.recoloured].inliers >= VERIFY_OPTIONS.min_inliers
    assert found[VERIFY_OPTIONS.recoloured].kind == "edited"
    assert found[0.0].inliers < VERIFY_OPTIONS.min_inliers  # the gray levels alone reject it


def sized_catalog(tmp_path, sizes: dict[int, tuple[int, int]]):
    """A catalog of images /lib/<id>.jpg of these (width, height), 1,000 bytes each."""
    from lookalike.indexer.store.catalog import Catalog

    catalog = Catalog(tmp_path / "catalog.sqlite")
    with catalog.transaction() as conn:
        for i, (w, h) in sizes.items():
            conn.execute(
                "INSERT INTO images (id, path, size, mtime_ns, hash, width, height, added, "
                "updated) VALUES (?, ?, 1000, 0, ?, ?, ?, 0, 0)",
                (i, f"/lib/{i}.jpg", f"h{i}", w, h),
            )
    return catalog


class RecordingVerifier:
    """Verdicts from a table; records the pairs it was asked to verify, per call."""

    def __init__(self, table: dict, crops: dict | None = None) -> None:
        self.table = table
        self.crops = crops or {}
        self.calls: list[set] = []  # by local features
        self.crop_calls: list[set] = []  # thumbnails searched as crops

    def __call__(self, rows):
        return self

    def verify(self, pairs, crops=False):
        (self.crop_calls if crops else self.calls).append(set(pairs))
        table = self.crops if crops else self.table
        return {p: Verdict(*table.get(p, (0, ""))) for p in pairs}

    def close(self) -> None:
        pass


class FlatIndex:
    """The two calls find_copy_groups makes of an index: ids() and reconstruct()."""

    def __init__(self, n: int) -> None:
        self.vectors = np.eye(n, dtype=np.float32)

    def ids(self):
        return np.arange(1, len(self.vectors) + 1, dtype=np.int64)

    def reconstruct(self, ids):
        return self.vectors[np.asarray(ids) - 1]


def test_a_small_image_with_a_verified_original_skips_its_deeper_candidates(tmp_path, monkeypatch):
    """The deeper candidates of a small image are there to find its original: once its
    first candidates verified it against a larger image, only those with the rest of its
    group (images its partners verified with) are verified."""
    import lookalike.search.copy_groups as cg

    sizes = {1: (300, 200), 2: (100, 66), 3: (60, 40), 4: (290, 200), 5: (280, 200)}
    sizes[6] = (310, 200)  # a genuine duplicate of 1, larger: the group's best image
    catalog = sized_catalog(tmp_path, sizes)
    try:
        first = {(1, 2), (3, 4), (1, 6)}
        deep = {(2, 4), (2, 5), (2, 6), (1, 3), (3, 5), (3, 6)}
        monkeypatch.setattr(cg, "staged_candidates", lambda *a, **k: (set(first), set(deep)))
        # 2 verifies with its original 1 at once; 3 only with deeper candidates of its own
        verified = {(1, 2): (40, "resized"), (1, 6): (90, "resized"), (2, 6): (35, "resized")}
        verified |= {(1, 3): (30, "resized"), (3, 6): (28, "resized")}
        check = RecordingVerifier(verified)
        found = cg.find_copy_groups(FlatIndex(6), catalog, verifier=check, hashes=False)
        # 2's deeper pairs: only the one with 6, which its original 1 verified with; then
        # a round that finds no more (3's links make none of the rest worth it)
        assert check.calls == [first, {(2, 6), (1, 3), (3, 5), (3, 6)}, set()]
        assert check.crop_calls == [set(), set()]  # every small image found its original
        assert [g.ids for g in found.groups] == [[6, 1, 2, 3]]
        assert (found.candidates, found.verified, found.skipped) == (9, 7, 2)
        # the next pass verifies nothing anew, and skips the same pairs
        again = RecordingVerifier({})
        second = cg.find_copy_groups(FlatIndex(6), catalog, verifier=again, hashes=False)
        assert again.calls == [set(), set()]
        assert [g.ids for g in second.groups] == [[6, 1, 2, 3]]
        assert (second.verified, second.skipped) == (0, 2)
    finally:
        catalog.close()


def test_the_whole_picture_is_kept_over_an_enlarged_crop_of_it(tmp_path, monkeypatch):
    """A larger image that shows part of a smaller one, enlarged, is a member of the
    smaller one's group, shown as "cropped"; the stored verdict says so on the next
    pass too."""
    import lookalike.search.copy_groups as cg

    catalog = sized_catalog(tmp_path, {1: (300, 225), 2: (400, 300), 3: (200, 150)})
    try:
        first = {(1, 2), (1, 3)}
        monkeypatch.setattr(cg, "staged_candidates", lambda *a, **k: (set(first), set()))
        check = RecordingVerifier({(1, 2): (40, cg.ENLARGED), (1, 3): (60, "resized")})
        found = cg.find_copy_groups(FlatIndex(3), catalog, verifier=check, hashes=False)
        assert [g.ids for g in found.groups] == [[1, 2, 3]]  # the rest by keep_order
        assert {m.id: m.kind for m in found.groups[0].members} == {
            1: "best",
            2: "cropped",
            3: "resized",
        }
        again = RecordingVerifier({})
        second = cg.find_copy_groups(FlatIndex(3), catalog, verifier=again, hashes=False)
        assert again.calls == [set(), set()] and second.groups[0].keep == 1
    finally:
        catalog.close()


def test_an_image_removed_or_changed_during_a_pass_never_breaks_it(tmp_path, monkeypatch):
    """An index run may remove or change an image while a pass verifies: the pass ends,
    and nothing is stored for the images that are gone or changed."""
    import lookalike.search.copy_groups as cg
    from lookalike.indexer.store.duplicate_pairs import known_verdicts
    from lookalike.indexer.store.image_hashes import known_hashes, write_hashes

    catalog = sized_catalog(tmp_path, {i: (300 - i, 200) for i in (1, 2, 3, 4)})
    try:
        rows = catalog.images([1, 2, 3, 4])
        first = {(1, 2), (1, 3), (3, 4)}
        monkeypatch.setattr(cg, "staged_candidates", lambda *a, **k: (set(first), set()))

        class IndexRunMeanwhile(RecordingVerifier):
            def verify(self, pairs, crops=False):
                with catalog.transaction() as conn:
                    conn.execute("DELETE FROM images WHERE id = 2")
                    conn.execute("UPDATE images SET hash = 'new' WHERE id = 4")
                return super().verify(pairs, crops)

        check = IndexRunMeanwhile({(1, 2): (40, "resized"), (3, 4): (30, "resized")})
        found = cg.find_copy_groups(FlatIndex(4), catalog, verifier=check, hashes=False)
        assert sorted(g.ids for g in found.groups) == [[1, 2], [3, 4]]  # as the pass saw them
        now = catalog.images([1, 3, 4])
        assert known_verdicts(catalog, now) == {(1, 3): (0, "")}
        assert catalog.conn.execute("SELECT COUNT(*) FROM duplicate_pairs").fetchone()[0] == 1
        d = np.ones((8, 8), np.float32)
        write_hashes(catalog, {1: d, 2: d, 4: None}, rows)  # 2 gone, 4 changed since
        assert list(known_hashes(catalog, catalog.images([1, 3, 4]), 8)) == [1]
        assert catalog.conn.execute("SELECT COUNT(*) FROM image_hashes").fetchone()[0] == 1
    finally:
        catalog.close()


def test_a_thumbnail_that_verifies_with_no_larger_image_is_searched_as_a_crop(
    tmp_path, monkeypatch
):
    """Of a small image (a thumbnail) that neither its first nor its deeper candidates
    verify with, every pair is searched as a crop, once; a larger image is not."""
    import lookalike.search.copy_groups as cg

    sizes = {1: (300, 200), 2: (290, 200), 3: (280, 200), 4: (40, 30), 5: (200, 150)}
    catalog = sized_catalog(tmp_path, sizes)
    try:
        first = {(1, 4), (2, 4), (1, 5)}
        deep = {(3, 4), (2, 5)}
        monkeypatch.setattr(cg, "staged_candidates", lambda *a, **k: (set(first), set(deep)))
        check = RecordingVerifier({}, crops={(3, 4): (40, "cropped")})
        found = cg.find_copy_groups(FlatIndex(5), catalog, verifier=check, hashes=False)
        # 4 is a thumbnail: all its pairs searched as crops; 5 (200 pixels) is not one
        assert check.crop_calls[0] == {(1, 4), (2, 4), (3, 4)}
        assert [g.ids for g in found.groups] == [[3, 4]]
        assert found.groups[0].members[1].kind == "cropped"
        again = RecordingVerifier({}, crops={(3, 4): (40, "cropped")})
        second = cg.find_copy_groups(FlatIndex(5), catalog, verifier=again, hashes=False)
        assert again.calls == [set(), set()] and again.crop_calls == [set()]
        assert [g.ids for g in second.groups] == [[3, 4]]
    finally:
        catalog.close()


def test_an_image_verified_first_as_the_smaller_then_as_the_larger_one(tmp_path):
    """Features kept of an image for one role are computed anew for the other."""
    scene(5).save(tmp_path / "a.png")
    scene(5).resize((240, 173)).save(tmp_path / "b.jpg", quality=90)
    scene(5).resize((150, 108)).save(tmp_path / "c.jpg", quality=90)
    rows = {
        1: row(1, 360, 260, path=str(tmp_path / "a.png")),
        2: row(2, 240, 173, path=str(tmp_path / "b.jpg")),
        3: row(3, 150, 108, path=str(tmp_path / "c.jpg")),
    }
    check = PairVerifier(rows)
    try:
        assert check.verify([(1, 2)])[(1, 2)].inliers >= 15  # 2 the smaller: a query only
        assert check.verify([(2, 3)])[(2, 3)].inliers >= 15  # 2 the larger
    finally:
        check.close()
