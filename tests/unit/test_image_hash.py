"""Perceptual hashes: a thumbnail, gray, mirrored or turned copy is nearest its original."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from lookalike.search.image_hash import coefficients, hash_pairs, image_hashes, views
from tests.unit.test_rerank import scene


def test_the_views_are_the_hashes_of_the_flipped_and_turned_image():
    img = scene(4, size=(256, 256))
    d = coefficients(img)
    assert d is not None
    plain = views(d)
    for view, turned in (
        (1, ImageOps.mirror(img)),
        (2, ImageOps.flip(img)),
        (3, img.rotate(180)),
    ):
        other = coefficients(turned)
        assert other is not None
        assert float(plain[view] @ views(other)[0]) > 0.999


def test_copies_pair_with_their_originals_and_blank_or_unreadable_files_have_no_hash(
    tmp_path,
):
    originals = {i: scene(10 + i) for i in range(1, 9)}
    copies = {
        11: originals[1].resize((54, 39)),  # a thumbnail
        12: originals[2].convert("L").convert("RGB"),
        13: ImageOps.mirror(originals[3]),
        14: originals[4].rotate(90, expand=True),
    }
    paths = {}
    for i, img in {**originals, **copies}.items():
        paths[i] = str(tmp_path / f"{i}.jpg")
        img.save(paths[i], quality=40)
    Image.new("RGB", (300, 200), (250, 250, 250)).save(tmp_path / "blank.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths |= {20: str(tmp_path / "blank.png"), 21: str(tmp_path / "broken.jpg")}
    ids, hashes = image_hashes(paths)
    assert sorted(ids.tolist()) == sorted(set(paths) - {20, 21})
    pairs = hash_pairs(ids, hashes, neighbours=1)
    assert {(1, 11), (2, 12), (3, 13), (4, 14)} <= pairs


def test_no_pairs_from_fewer_than_two_hashes():
    assert hash_pairs(np.zeros(0, np.int64), np.zeros((0, 8, 63), np.float32)) == set()
