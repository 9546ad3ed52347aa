"""Geometric verification: copies get many consistent matches, other images few."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from lookalike.indexer.errors import UnreadableImage
from lookalike.search.rerank import (
    EMPTY,
    Reranker,
    RerankOptions,
    count_inliers,
    extract,
    extract_mirrored,
    gray_at_side,
    match_features,
    small_query,
    thumb_correlation,
)
from lookalike.search.searcher import SearchResult, merge_results, same_picture_first


def scene(seed: int, size=(360, 260)) -> Image.Image:
    """A drawn 'photo' full of corners and edges (what ORB keys on), different per seed."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(60):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(8, 70)), y0 + int(rng.integers(8, 70))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
            draw.polygon(points, fill=colour)
    return img


def edited(img: Image.Image) -> Image.Image:
    """Cropped, rotated, shrunk and grayscale: a hard but genuine copy."""
    w, h = img.size
    img = img.crop((int(w * 0.15), int(h * 0.1), int(w * 0.9), int(h * 0.95)))
    img = img.rotate(8, resample=Image.BICUBIC)
    img = img.resize((img.size[0] // 2, img.size[1] // 2), Image.BILINEAR)
    return img.convert("L").convert("RGB")


def features(img: Image.Image):
    return extract(gray_at_side(img, 400), 700)


def test_a_copy_has_many_inliers_and_another_image_few():
    original = scene(1)
    copy = features(edited(original))
    assert count_inliers(copy, features(original), reprojection=4.0) >= 40
    assert count_inliers(copy, features(scene(2)), reprojection=4.0) < 15


def test_half_the_descriptors_first_finds_a_copy_as_all_do_and_stops_early_otherwise(
    monkeypatch,
):
    import lookalike.search.rerank as rerank

    original = scene(1)
    copy, found = features(edited(original)), features(original)
    full = match_features(copy, found, reprojection=4.0)
    half = match_features(copy, found, reprojection=4.0, half_first=20)
    assert half.inliers == full.inliers >= 40
    assert np.array_equal(half.transform, full.transform)
    searched = []
    plain_search = rerank.hamming_two_nearest

    def counted(queries, base):
        searched.append(len(queries))
        return plain_search(queries, base)

    monkeypatch.setattr(rerank, "hamming_two_nearest", counted)
    other = features(scene(2))  # drawn shapes alike: some descriptors match, 13 of half
    assert match_features(copy, other, reprojection=4.0, half_first=20) is rerank.NO_MATCH
    assert searched == [(copy.size + 1) // 2]  # the rest never matched


def test_empty_features_match_nothing():
    assert count_inliers(EMPTY, features(scene(1))) == 0
    flat = Image.new("RGB", (200, 200), (128, 128, 128))
    assert features(flat).size == 0


def test_gray_at_side_scales_the_longer_side_up_or_down():
    assert gray_at_side(Image.new("RGB", (100, 50)), 400).shape == (200, 400)
    assert gray_at_side(Image.new("RGB", (1000, 2000)), 400).shape == (400, 200)


class Files:
    """A fake file system for the re-ranker: path -> image, counting reads."""

    def __init__(self, images: dict[str, Image.Image]) -> None:
        self.images = images
        self.reads: list[str] = []

    def load(self, path: str, min_side: int) -> Image.Image:
        self.reads.append(path)
        if path not in self.images:
            raise UnreadableImage(path, "missing")
        return self.images[path]


def ranked_paths(reranker: Reranker, query: Image.Image, paths: list[str]) -> list[str]:
    return [p for p, _n in reranker.rerank(query, paths, path=lambda p: p)]


def test_the_verified_copy_moves_to_the_front():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(6)})
    reranker = Reranker(RerankOptions(workers=1), load=files.load)
    paths = [f"/lib/{i}.jpg" for i in (5, 4, 3, 2)]  # the original (3) third
    out = reranker.rerank(edited(scene(3)), paths, path=lambda p: p)
    assert out[0][0] == "/lib/3.jpg" and out[0][1] >= 15
    # unverified candidates keep their first-stage order after it
    assert [p for p, _n in out[1:]] == ["/lib/5.jpg", "/lib/4.jpg", "/lib/2.jpg"]


def test_a_thumbnail_copy_is_verified_whole_where_orb_sees_too_little():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(6)})
    paths = [f"/lib/{i}.jpg" for i in (5, 4, 3, 2)]  # the original (3) third
    tiny = ImageOps.mirror(scene(3).resize((54, 39), Image.BILINEAR).convert("L").convert("RGB"))
    off = Reranker(RerankOptions(workers=1, small_query=0), load=files.load)
    assert [n for _p, n in off.rerank(tiny, paths, path=lambda p: p)][2] < 15  # ORB alone
    reranker = Reranker(RerankOptions(workers=1), load=files.load)
    out = reranker.rerank(tiny, paths, path=lambda p: p)
    assert out[0][0] == "/lib/3.jpg" and out[0][1] >= 15
    assert [p for p, _n in out[1:]] == ["/lib/5.jpg", "/lib/4.jpg", "/lib/2.jpg"]


def test_thumbnail_correlation_needs_the_same_aspect_and_picture():
    thumb = scene(3).convert("L").resize((64, 46), Image.BOX)
    small = small_query(scene(3).resize((48, 35)), 48)
    assert thumb_correlation(small, thumb, 360 / 260) > 0.95
    assert thumb_correlation(small_query(scene(4).resize((48, 35)), 48), thumb, 360 / 260) < 0.8
    squeezed = scene(3).resize((48, 48)).convert("L")
    assert thumb_correlation(small_query(squeezed, 48), thumb, 360 / 260) == -1.0


def test_a_mirrored_copy_is_verified():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(4)})
    reranker = Reranker(RerankOptions(workers=1), load=files.load)
    query = ImageOps.mirror(edited(scene(2)))
    assert ranked_paths(reranker, query, [f"/lib/{i}.jpg" for i in range(4)])[0] == "/lib/2.jpg"


def test_mirrored_keypoints_match_a_mirrored_copy_as_a_second_detection_does():
    gray = gray_at_side(scene(3), 320)
    plain, mirrored = extract_mirrored(gray, 500)
    assert plain.size == extract(gray, 500).size > 100
    copy = features(ImageOps.mirror(edited(scene(3))))
    detected = extract(np.ascontiguousarray(gray[:, ::-1]), 500)
    found = count_inliers(mirrored, copy, reprojection=4.0)
    assert found >= 40 and found >= 0.7 * count_inliers(detected, copy, reprojection=4.0)
    assert (
        count_inliers(plain, copy, reprojection=4.0) < 15
    )  # the descriptors are not mirror invariant
    assert count_inliers(mirrored, features(scene(4)), reprojection=4.0) < 15
    thin = extract_mirrored(np.zeros((20, 400), np.uint8), 500)
    assert thin == (EMPTY, EMPTY)
    assert extract_mirrored(np.full((200, 200), 128, np.uint8), 500) == (EMPTY, EMPTY)


def test_the_duplicates_pass_prepares_queries_with_mirrored_keypoints():
    mirrored = Reranker(RerankOptions(workers=1, mirror_keypoints=True))
    detected = Reranker(RerankOptions(workers=1))
    copy = ImageOps.mirror(edited(scene(5)))
    a, b = mirrored.query_features(copy), detected.query_features(copy)
    assert np.array_equal(a.plain.descriptors, b.plain.descriptors)
    assert a.mirrored.size > 0.8 * b.mirrored.size
    found = mirrored.verify_candidate(a, mirrored.candidate_of(scene(5)))
    assert found.mirrored and found.inliers >= 40
    assert mirrored.verify_candidate(a, mirrored.candidate_of(scene(6))).inliers < 15


def test_unreadable_candidates_stay_unverified_in_place():
    files = Files({"/lib/b.jpg": scene(7)})
    reranker = Reranker(RerankOptions(workers=1), load=files.load)
    out = reranker.rerank(edited(scene(7)), ["/gone/a.jpg", "/lib/b.jpg"], path=lambda p: p)
    assert out == [("/lib/b.jpg", out[0][1]), ("/gone/a.jpg", None)]


def test_a_sure_copy_among_the_first_spares_the_rest():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(10)})
    options = RerankOptions(workers=1, first=2, depth=10, sure_inliers=20, sure_fraction=0.05)
    reranker = Reranker(options, load=files.load)
    paths = [f"/lib/{i}.jpg" for i in range(10)]
    assert ranked_paths(reranker, scene(0).resize((300, 216)), paths)[0] == "/lib/0.jpg"
    assert files.reads == paths[:2]
    files.reads.clear()
    reranker.clear()
    # not a copy of anything among the first: every candidate up to depth is checked
    assert ranked_paths(reranker, edited(scene(8)), paths)[0] == "/lib/8.jpg"
    assert files.reads == paths


def test_candidates_beyond_deep_are_untouched_and_features_are_cached():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(5)})
    reranker = Reranker(RerankOptions(workers=2, depth=3, first=3, deep=3), load=files.load)
    paths = [f"/lib/{i}.jpg" for i in range(5)]
    out = reranker.rerank(edited(scene(4)), paths, path=lambda p: p)
    assert [p for p, _n in out] == paths  # the original (4) is beyond deep: not found
    assert out[3][1] is None and out[4][1] is None
    reranker.rerank(edited(scene(1)), paths, path=lambda p: p)
    assert sorted(files.reads) == paths[:3]  # read once each
    # a deeper search for this query (the searcher's, with copy candidates) finds it
    out = reranker.rerank(edited(scene(4)), paths, path=lambda p: p, deep=5)
    assert out[0][0] == "/lib/4.jpg" and out[0][1] >= reranker.options.min_inliers
    reranker.close()


def test_a_copy_ranked_deep_is_searched_for_only_when_none_of_the_first_verifies():
    files = Files({f"/lib/{i}.jpg": scene(i) for i in range(9)})
    options = RerankOptions(workers=1, first=2, depth=3, deep=7)
    paths = [f"/lib/{i}.jpg" for i in range(9)]
    reranker = Reranker(options, load=files.load)
    # the original (5) lies beyond depth: the next depth candidates are verified, in turn
    out = reranker.rerank(edited(scene(5)), paths, path=lambda p: p)
    assert out[0][0] == "/lib/5.jpg" and out[0][1] >= options.min_inliers
    assert files.reads == paths[:6]  # stopped at the sure copy, before deep
    assert [p for p, _n in out[1:]] == [p for p in paths if p != "/lib/5.jpg"]
    # a verified copy among the first depth (1): nothing deeper is read
    files.reads.clear()
    reranker.clear()
    query = edited(scene(1)).resize((80, 59))  # small: verified, but not a sure copy
    out = reranker.rerank(query, paths, path=lambda p: p)
    assert out[0][0] == "/lib/1.jpg"
    assert files.reads == paths[:3]
    # nothing verifies (not a copy): every candidate up to deep is checked, order kept
    files.reads.clear()
    out = reranker.rerank(scene(99), paths, path=lambda p: p)
    assert [p for p, _n in out] == paths
    assert sorted(files.reads) == sorted(set(paths[:7]) - set(paths[:3]))  # first 3 cached


def test_no_results_rerank_to_no_results():
    assert Reranker(load=Files({}).load).rerank(scene(0), [], path=lambda p: p) == []


@pytest.mark.parametrize(
    "lists, expected",
    [
        ([[(1, 0.9), (2, 0.5)], [(2, 0.95), (3, 0.4)]], [(2, 0.95), (1, 0.9), (3, 0.4)]),
        ([[(1, 0.3)], []], [(1, 0.3)]),
    ],
)
def test_views_merge_by_best_score(lists, expected):
    as_results = [[SearchResult(i, f"/{i}.jpg", s) for i, s in rs] for rs in lists]
    assert [(r.id, r.score) for r in merge_results(as_results)] == expected


def test_the_same_picture_comes_before_verified_copies():
    verified_first = [
        SearchResult(7, "/copy-with-more-keypoints.jpg", 0.99995),
        SearchResult(3, "/other-copy.jpg", 0.93),
        SearchResult(1, "/the-query-itself.jpg", 1.0),
        SearchResult(4, "/unverified.jpg", 0.95),
    ]
    assert [r.id for r in same_picture_first(verified_first)] == [1, 7, 3, 4]


# -- the copy descriptors' nearest images keep places in the first k -------------------
def _results(*ids: int):
    from lookalike.search.searcher import SearchResult

    return [SearchResult(i, f"/p/{i}.jpg", 1 - i / 100) for i in ids]


def test_the_copy_descriptors_nearest_take_the_last_places_of_the_page():
    from lookalike.search.searcher import keep_nearest

    results = _results(*range(1, 21))
    out = keep_nearest(results, [15, 3], k=10, fixed=0)  # 3 is on the page already
    assert [r.id for r in out][:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 15]
    assert [r.id for r in out][10:] == [10, 11, 12, 13, 14, 16, 17, 18, 19, 20]
    out = keep_nearest(results, [18, 15], k=10, fixed=0)
    assert [r.id for r in out][8:10] == [18, 15]
    assert sorted(r.id for r in out) == list(range(1, 21))  # nothing lost, nothing twice


def test_nearest_places_are_few_and_never_displace_verified_copies():
    from lookalike.search.searcher import keep_nearest

    results = _results(*range(1, 21))
    assert keep_nearest(results, [15, 16], k=4, fixed=0) == results  # k // 5 = 0 places
    assert [r.id for r in keep_nearest(results, [15, 16], k=5, fixed=0)][:5] == [1, 2, 3, 4, 15]
    assert keep_nearest(results, [15, 16], k=10, fixed=10) == results  # a page of copies
    out = keep_nearest(results, [15, 16], k=10, fixed=9)
    assert [r.id for r in out][:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 15]
    assert keep_nearest(results, [99], k=10, fixed=0) == results  # not among the results
