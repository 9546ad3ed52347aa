"""Perceptual hashes: a thumbnail, gray, mirrored or turned copy is nearest its original."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from lookalike.search.image_hash import ODD, coefficients, hash_pairs, image_hashes, views
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


def test_the_hnsw_path_finds_the_copies_the_exact_search_finds():
    # Above EXACT_UP_TO hashes the search goes through an HNSW graph; here it is forced
    # on 3,000 synthetic codes: 2,600 unrelated images and 200 copies (flipped, turned or
    # slightly changed) of 200 of them.
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(2800, 8, 8)).astype(np.float32)
    copies = []
    for i in range(200):
        d = originals[i].copy()
        d = [d, d * ODD[None, :], d.T, d * ODD[:, None]][i % 4]
        copies.append(d + rng.normal(scale=0.05, size=d.shape).astype(np.float32))
    codes = np.stack([views(d) for d in [*originals, *copies]]).astype(np.float32)
    ids = np.arange(len(codes), dtype=np.int64) + 1000
    planted = {(1000 + i, 1000 + 2800 + i) for i in range(200)}

    exact = hash_pairs(ids, codes)
    graph = hash_pairs(ids, codes, exact_up_to=0)

    assert planted <= exact
    assert planted <= graph
    assert len(graph & exact) >= 0.95 * len(exact)


def test_hashes_on_threads_are_those_of_one_thread(tmp_path):
    paths = {}
    for i in range(1, 9):
        paths[i] = str(tmp_path / f"{i}.jpg")
        scene(50 + i).save(paths[i], quality=50)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths[9] = str(tmp_path / "broken.jpg")
    one_ids, one = image_hashes(paths, workers=1)
    ids, hashes = image_hashes(paths, workers=3)
    assert ids.tolist() == one_ids.tolist() == list(range(1, 9))
    assert np.array_equal(hashes, one)


def test_a_pass_keeps_the_hashes_and_the_next_decodes_only_new_or_changed_files(
    tmp_path, monkeypatch
):
    import lookalike.search.copy_groups as cg
    from lookalike.indexer.store.catalog import Catalog

    files = {i: scene(30 + i) for i in range(1, 5)}
    files[5] = Image.new("RGB", (120, 90), (200, 200, 200))  # blank: no hash, kept as such
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        with catalog.transaction() as conn:
            for i, img in [*files.items(), (6, None)]:  # 6: unreadable (not on disk)
                path = tmp_path / f"{i}.png"
                if img is not None:
                    img.save(path)
                conn.execute(
                    "INSERT INTO images (id, path, size, mtime_ns, hash, width, height, added, "
                    "updated) VALUES (?, ?, 1, 0, ?, 120, 90, 0, 0)",
                    (i, str(path), f"h{i}"),
                )
        rows = catalog.images(range(1, 7))
        decoded: list[set[int]] = []
        plain = cg.hash_coefficients

        def counted(paths, workers=0):
            decoded.append(set(paths))
            return plain(paths, workers)

        monkeypatch.setattr(cg, "hash_coefficients", counted)
        ids, found = cg.library_hashes(catalog, rows)
        expected_ids, expected = image_hashes({i: r["path"] for i, r in rows.items()})
        assert ids.tolist() == expected_ids.tolist() == [1, 2, 3, 4]
        assert np.array_equal(found, expected)
        again_ids, again = cg.library_hashes(catalog, rows)
        assert decoded == [{1, 2, 3, 4, 5, 6}, {6}]  # only the unreadable one is tried again
        assert again_ids.tolist() == [1, 2, 3, 4] and np.array_equal(again, expected)
        # 2's file changed (another picture): decoded anew, its new hash used
        files[2] = scene(99)
        files[2].save(tmp_path / "2.png")
        changed = dict(rows)
        changed[2] = {**rows[2], "hash": "new"}
        new_ids, new = cg.library_hashes(catalog, changed)
        assert decoded[-1] == {2, 6}
        assert new_ids.tolist() == [1, 2, 3, 4]
        assert not np.array_equal(new[1], expected[1])
        assert np.array_equal(np.delete(new, 1, axis=0), np.delete(expected, 1, axis=0))
        # hashes computed another way are computed anew
        with catalog.transaction() as conn:
            catalog.set_meta(cg.HASHER_KEY, "0", conn)
        cg.library_hashes(catalog, changed)
        assert decoded[-1] == {1, 2, 3, 4, 5, 6}
    finally:
        catalog.close()
