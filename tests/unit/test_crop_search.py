"""A thumbnail cut from part of a photo: found in the photo, verified, grouped."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.indexer.images import load_image
from lookalike.search.copy_groups import VERIFY_OPTIONS, PairVerifier
from lookalike.search.crop_search import crop_search
from lookalike.search.rerank import Reranker, RerankOptions
from tests.support.data import dev_images
from tests.unit.test_copy_groups import row


def gray(img: Image.Image, side: int = 128) -> np.ndarray:
    img = img.convert("L")
    img.thumbnail((side, side), Image.Resampling.BOX)
    return np.asarray(img)


def thumbnail_of_crop(img: Image.Image, box, side: int) -> Image.Image:
    """The part ``box`` (fractions of the sides) of ``img``, shrunk to ``side`` pixels."""
    w, h = img.size
    part = img.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    part.thumbnail((side, side), Image.Resampling.BICUBIC)
    return part


@pytest.fixture(scope="module")
def photos():
    return [load_image(str(p)).image for p in dev_images(classes=6, per_class=1)]


@pytest.mark.parametrize("mirror", [False, True])
def test_a_thumbnail_of_a_crop_is_found_where_it_was_cut(photos, mirror):
    photo = photos[0]
    box = (0.2, 0.15, 0.75, 0.7)
    small = thumbnail_of_crop(photo, box, 40)
    if mirror:
        small = ImageOps.mirror(small)
    large = gray(photo)
    found = crop_search(gray(small, 40), large, least=0.3)
    assert found is not None and found.correlation > 0.95 and found.mirrored == mirror
    # the small image's corners land on the crop's corners (in the thumbnail's pixels)
    qh, qw = gray(small, 40).shape
    corners = np.array([[0, 0, 1], [qw, qh, 1]], dtype=np.float64) @ found.transform.T
    h, w = large.shape  # (mirrored: the map is of the small image mirrored back)
    expected = np.array([[box[0] * w, box[1] * h], [box[2] * w, box[3] * h]])
    assert np.abs(corners - expected).max() < 0.06 * w


def test_a_blank_thumbnail_is_found_nowhere(photos):
    assert crop_search(np.full((30, 40), 128, np.uint8), gray(photos[0]), least=0.3) is None


def test_a_thumbnail_of_another_photo_correlates_less_than_its_own(photos):
    small = gray(thumbnail_of_crop(photos[3], (0.1, 0.1, 0.7, 0.8), 40), 40)
    own = crop_search(small, gray(photos[3]), least=0.3)
    others = [crop_search(small, gray(p), least=0.3) for i, p in enumerate(photos) if i != 3]
    assert own is not None and own.correlation > 0.95
    assert all(o is None or o.correlation < 0.85 for o in others)


def test_the_duplicates_verifier_takes_a_cropped_thumbnail_that_orb_cannot(tmp_path, photos):
    photo = photos[2]
    photo.save(tmp_path / "photo.jpg", quality=95)
    small = thumbnail_of_crop(photo, (0.3, 0.25, 0.8, 0.75), 44)
    small.save(tmp_path / "thumb.jpg", quality=60)
    photos[3].save(tmp_path / "other.jpg", quality=95)
    rows = {
        1: row(1, *photo.size, path=str(tmp_path / "photo.jpg")),
        2: row(2, *small.size, path=str(tmp_path / "thumb.jpg")),
        3: row(3, *photos[3].size, path=str(tmp_path / "other.jpg")),
    }
    check = PairVerifier(rows)
    try:
        plain = check.verify([(1, 2), (2, 3)])
        cropped = check.verify([(1, 2), (2, 3)], crops=True)
    finally:
        check.close()
    enough = VERIFY_OPTIONS.min_inliers
    assert plain[(1, 2)].inliers < enough  # local features alone do not verify it
    # cropped, or edited where its recompressed pixels agree less than an unchanged copy's
    assert cropped[(1, 2)].inliers >= enough and cropped[(1, 2)].kind in ("cropped", "edited")
    assert cropped[(2, 3)].inliers < enough
    # search does not look for crops unless asked
    searcher = Reranker(RerankOptions())
    try:
        q = searcher.query_features(load_image(str(tmp_path / "thumb.jpg")).image)
        c = searcher.candidate_of(photo)
        assert searcher.verify_crop(q, c).inliers == 0
    finally:
        searcher.close()


def test_a_thumbnail_copies_only_the_places_that_correlate_about_best(tmp_path, monkeypatch):
    """A thumbnail is cut from one picture: of its candidates, only those within
    CROP_MARGIN of its best correlation count, whatever their pixel check."""
    import lookalike.search.copy_groups as cg
    from lookalike.search.rerank import Verification

    rows = {i: row(i, 300, 200) for i in (1, 2, 3)} | {4: row(4, 40, 30)}
    scores = {1: 0.99, 2: 0.985, 3: 0.95}
    check = PairVerifier(rows)

    def searched(pair):  # as Reranker.verify_crop would find it: every place agrees
        found = Verification(40, False, 0.99, None, scores[min(pair)])
        return found, cg.Verdict(40, "cropped")

    monkeypatch.setattr(check, "_crop", searched)
    try:
        verdicts = check.verify([(1, 4), (2, 4), (3, 4)], crops=True)
    finally:
        check.close()
    assert {p: v.inliers for p, v in verdicts.items()} == {(1, 4): 40, (2, 4): 40, (3, 4): 0}
