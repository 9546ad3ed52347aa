"""The library map: the projection, its file, its colours and its two API routes."""

from __future__ import annotations

import struct

import numpy as np

from lookalike.classifier.clustering import projection
from lookalike.classifier.clustering.library_map import colours, library_map
from lookalike.indexer.store import map_file
from lookalike.indexer.store.library import Library
from tests.support.fakes import FakeEmbedder
from tests.support.vectors import clusters, write_vectors
from tests.support.webapp import make_app


def knn_agreement(xy: np.ndarray, classes: np.ndarray, k: int = 10) -> float:
    """How many of each point's k nearest points on the map share its class."""
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    return float((classes[nearest] == classes[:, None]).mean())


def test_the_map_keeps_classes_together_where_two_pca_axes_do_not():
    x, y = clusters(12, 40, dim=64, spread=0.6, seed=3)
    found = projection.project(np.arange(len(x)) + 100, x, landmarks=300)
    assert found.xy.shape == (len(x), 2)
    assert found.xy.min() >= 0 and found.xy.max() <= 1
    centred = x - x.mean(0)
    pca2 = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    ours, reference = knn_agreement(found.xy, y), knn_agreement(pca2, y)
    assert ours > 0.9
    assert ours > reference + 0.1


def test_extend_keeps_every_known_place_and_places_new_images_near_their_kind():
    x, y = clusters(6, 60, dim=32, seed=1)
    ids = np.arange(len(x))
    old = projection.project(ids[::2], x[::2], landmarks=100)
    new = projection.extend(old, ids, x)
    assert np.array_equal(new.coordinates(ids[::2]), old.coordinates(ids[::2]))
    # each new image lands among images of its class (its nearest old image on the map)
    placed, known = new.coordinates(ids[1::2]), old.xy
    d = ((placed[:, None, :] - known[None, :, :]) ** 2).sum(-1)
    assert (y[::2][d.argmin(axis=1)] == y[1::2]).mean() > 0.9
    assert not projection.needs_fresh(old, ids)
    assert projection.needs_fresh(old, np.arange(1000, 1400))  # nothing left of the old map


DIM = FakeEmbedder().info.dim


def make_library(root, n_classes=5, per_class=30):
    x, y = clusters(n_classes, per_class, dim=DIM, seed=2)
    with Library.create(root, FakeEmbedder().info) as lib:
        ids = write_vectors(lib, x)
        with lib.catalog.transaction() as conn:
            lib.catalog.set_labels(conn, [(ids[0], "first"), (ids[1], "first")], "manual")
    return ids, y


def test_the_map_file_is_reused_extended_and_rebuilt(tmp_path):
    root = tmp_path / "lib"
    ids, _ = make_library(root)
    with Library.open(root) as lib:
        first = library_map(lib)
    assert (root / map_file.FILE_NAME).exists()
    with Library.open(root) as lib:
        again = library_map(lib)  # from the file: the same map
    assert np.array_equal(first.xy, again.xy)
    with Library.open(root, readonly=False) as lib:
        more = write_vectors(lib, clusters(2, 5, dim=DIM, seed=9)[0], start=1000)
        extended = library_map(lib)
    assert np.array_equal(extended.coordinates(ids), first.coordinates(ids))
    assert set(more) <= set(extended.ids.tolist())
    (root / map_file.FILE_NAME).write_bytes(b"not a zip file")
    with Library.open(root) as lib:
        rebuilt = library_map(lib)  # an unreadable file is computed again, no error
    assert len(rebuilt.ids) == len(extended.ids)


def test_colours_by_label_and_tag(tmp_path):
    root = tmp_path / "lib"
    ids, _ = make_library(root)
    with Library.open(root) as lib:
        found = library_map(lib)
        by_label = colours(lib, found.ids, "label")
    assert by_label.legend == [("first", 2)]
    assert by_label.none_count == len(ids) - 2
    assert int(by_label.codes[list(found.ids).index(ids[0])]) == 1


def test_the_api_serves_the_map_as_json_and_binary(tmp_path):
    root = tmp_path / "lib"
    ids, _ = make_library(root)
    client = make_app(root, EMBEDDER=FakeEmbedder()).test_client()
    meta = client.get("/api/map?colour=label").get_json()
    assert meta["count"] == len(ids)
    assert meta["legend"] == [{"name": "first", "count": 2}]
    assert meta["none"] == {"name": "no human label", "count": len(ids) - 2}
    body = client.get(meta["points"]).data
    (n,) = struct.unpack("<I", body[:4])
    assert n == len(ids) and len(body) == 4 + 10 * n
    got_ids = np.frombuffer(body, "<u4", n, 4)
    codes = np.frombuffer(body, "<u2", n, 4 + 8 * n)
    assert sorted(got_ids.tolist()) == sorted(ids)
    assert codes[got_ids == ids[0]][0] == 1 and (codes == 1).sum() == 2
    bad = client.get("/api/map?colour=rainbow")
    assert bad.status_code == 400 and "colour" in bad.get_json()["error"]
    page = client.get("/map")
    assert page.status_code == 200 and b"map.js" in page.data


def test_an_empty_library_has_an_empty_map(tmp_path):
    root = tmp_path / "lib"
    Library.create(root, FakeEmbedder().info).close()
    meta = make_app(root, EMBEDDER=FakeEmbedder()).test_client().get("/api/map").get_json()
    assert meta["count"] == 0 and meta["legend"] == []
