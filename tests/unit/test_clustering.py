"""Clustering (classifier.clustering.discovery) and review persistence
(classifier.clustering.review).

Synthetic blobs of unit vectors stand in for embeddings; review actions run on a real
catalog filled with those vectors (no model needed).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from lookalike.classifier.clustering import review as review
from lookalike.classifier.clustering.discovery import cluster_vectors
from lookalike.classifier.clustering.linkage import merge_groups
from lookalike.classifier.clustering.matching import match_ids, partition_like, two_parts
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library
from tests.support.vectors import unit

DIM = 48


def blobs(sizes, spread=0.5, seed=0, centres=None):
    """Points around random (nearly orthogonal) centres; returns (vectors, blob index)."""
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = unit(rng.normal(size=(len(sizes), DIM)))
    pts = [
        unit(c + spread * rng.normal(size=(n, DIM)) / np.sqrt(DIM))
        for c, n in zip(centres, sizes, strict=True)
    ]
    return np.vstack(pts), np.repeat(np.arange(len(sizes)), sizes)


def partition(result, n):
    out = np.full(n, -1)
    for k, c in enumerate(result.clusters):
        out[c.members] = k
    return out


# -- the algorithm ------------------------------------------------------------------------
def test_graph_merging_is_average_linkage_on_a_complete_graph():
    x, _ = blobs([15, 12, 10, 8], spread=1.2, seed=1)
    edges = np.array([(i, j) for i in range(len(x)) for j in range(i + 1, len(x))])
    group, _lab = merge_groups(x, np.full(len(x), -1), edges, 0.5, ClusterParams())
    ref = AgglomerativeClustering(
        n_clusters=None, distance_threshold=0.5, metric="cosine", linkage="average"
    ).fit_predict(x)
    assert len(set(ref)) > 4  # the threshold cuts inside blobs too: a real comparison
    assert adjusted_rand_score(ref, group) == 1.0


def test_new_blobs_become_clusters_and_labelled_blobs_take_their_images():
    x, blob = blobs([20, 20, 20, 14, 12, 10])
    labelled = np.zeros(len(x), bool)
    for b in (0, 1, 2):
        labelled[np.flatnonzero(blob == b)[:6]] = True
    names = np.array(["ant", "bee", "cat", "", "", ""])
    res = cluster_vectors(x[~labelled], x[labelled], list(names[blob[labelled]]))
    truth = blob[~labelled]
    assert adjusted_rand_score(truth, partition(res, len(truth))) == 1.0
    assert len(res.noise) == 0
    # New categories first (largest first among equally cohesive), then "more of" groups.
    assert [c.label for c in res.clusters][:3] == [None, None, None]
    assert {c.label for c in res.clusters[3:]} == {"ant", "bee", "cat"}
    for c in res.clusters[3:]:
        assert c.nearest_label == c.label and c.nearest_label_similarity > 0.9
        assert set(truth[c.members]) == {"ant bee cat".split().index(c.label)}
    assert all(0 < c.cohesion <= 1 for c in res.clusters)
    assert res.clusters[0].representatives[0] in res.clusters[0].members


def test_a_tight_lookalike_class_next_to_a_labelled_one_stays_apart():
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=DIM))
    near = unit(base + 1.0 * unit(rng.normal(size=DIM)))  # cosine 0.65 to base
    loose = unit(base + 0.9 * rng.normal(size=(30, DIM)) / np.sqrt(DIM))
    tight = unit(near + 0.3 * rng.normal(size=(20, DIM)) / np.sqrt(DIM))
    x, blob = np.vstack([loose, tight]), np.repeat([0, 1], [30, 20])
    labelled = np.arange(len(x)) < 8
    params = ClusterParams(threshold=0.7)
    res = cluster_vectors(x[~labelled], x[labelled], ["chair"] * 8, params)
    new = [c for c in res.clusters if c.label is None]
    assert len(new) == 1 and set(blob[~labelled][new[0].members]) == {1}
    assert len(new[0].members) == 20
    # Without the spread tests the look-alike is swallowed: the test can fail.
    loose = ClusterParams(threshold=0.7, rho_join=100, rho_class=100)
    res = cluster_vectors(x[~labelled], x[labelled], ["chair"] * 8, loose)
    assert [c.label for c in res.clusters] == ["chair"]


def test_two_settled_unnamed_lookalike_classes_stay_apart():
    rng = np.random.default_rng(6)
    base = unit(rng.normal(size=DIM))
    near = unit(base + 0.9 * unit(rng.normal(size=DIM)))  # within the cut of 0.7
    x, blob = blobs([30, 30], spread=0.4, seed=5, centres=[base, near])
    # Spreads 0.13, 0.38 apart: within the cut, beyond 1.5 x the spread floor (0.22).
    # Settled: 3 x 5 = 15 images; 60 > DIM: no PCA.
    params = ClusterParams(threshold=0.7, rho_apart=1.5)
    res = cluster_vectors(x, params=params)
    assert adjusted_rand_score(blob, partition(res, len(x))) == 1.0
    # Without the test the two merge (the test can fail), and groups under the settled
    # size are not judged.
    merged = cluster_vectors(x, params=ClusterParams(threshold=0.7, rho_apart=1e9))
    assert len(merged.clusters) == 1
    small = ClusterParams(threshold=0.7, rho_apart=1.5, settled_factor=7)  # 35 > 30
    assert len(cluster_vectors(x, params=small).clusters) == 1


def test_rejected_groups_are_not_proposed_together_again():
    x, blob = blobs([12, 12])
    res = cluster_vectors(x, params=ClusterParams(min_size=3))
    assert len(res.clusters) == 2
    rejected = np.flatnonzero(blob == 0)
    res = cluster_vectors(x, params=ClusterParams(min_size=3), apart=[rejected])
    for c in res.clusters:
        assert len(set(c.members) & set(rejected)) <= 1
    assert len(set(res.noise) & set(rejected)) >= 11


def test_no_labels_small_and_empty_inputs():
    x, blob = blobs([8, 8])
    res = cluster_vectors(x)
    assert adjusted_rand_score(blob, partition(res, len(x))) == 1.0
    assert all(c.nearest_label is None for c in res.clusters)
    assert cluster_vectors(x[:1]).noise.tolist() == [0]
    assert cluster_vectors(np.zeros((0, DIM), np.float32)).clusters == []


def test_match_ids_keeps_ids_of_similar_member_sets():
    old = {7: {1, 2, 3, 4}, 8: {10, 11, 12}, 9: {20, 21}}
    new = [{1, 2, 3, 4, 5}, {10, 30, 31, 32}, {20, 21}, {40, 41}]
    assert match_ids(old, new) == [7, None, 9, None]


def test_two_parts_and_partition_like():
    x, blob = blobs([9, 7])
    parts = two_parts(x)
    assert adjusted_rand_score(blob, np.isin(np.arange(16), parts[1]).astype(int)) == 1.0
    assert two_parts(np.repeat(x[:1], 4, axis=0)) is None
    ids = np.arange(100, 116)
    known = [set(ids[blob == 0][:3].tolist()), set(ids[blob == 1][:3].tolist())]
    got = partition_like(ids, x, known, [x[blob == 0][:3], x[blob == 1][:3]])
    assert sorted(map(sorted, got)) == sorted([ids[blob == 0].tolist(), ids[blob == 1].tolist()])


# -- review actions over a real catalog ------------------------------------------------------
def make_library(root, x, labels):
    info = ModelInfo(name="fake", dim=DIM, preprocessing="none", weights_hash="")
    lib = Library.create(root, info)
    items = [
        NewImage(f"/img/{i:03d}.jpg", 1, 1, f"h{i}", 1, 1, v, [("thing", 0.5), ("other", 0.1)])
        for i, v in enumerate(x)
    ]
    with lib.catalog.transaction() as conn:
        ids = lib.catalog.write_images(conn, items)
        lib.catalog.set_labels(
            conn, [(i, lab) for i, lab in zip(ids, labels, strict=True) if lab], "folder"
        )
    lib.close()
    return root


@pytest.fixture
def library(tmp_path):
    x, blob = blobs([16, 16, 14, 12], seed=5)
    labels = ["ant" if b == 0 and k < 6 else None for k, b in enumerate(blob)]
    with Library.open(make_library(tmp_path / "lib", x, labels), readonly=False) as lib:
        yield lib


def labels_of(lib):
    return lib.catalog.conn.execute("SELECT image_id, label, origin FROM labels").fetchall()


def member_ids(cluster) -> set[int]:
    return {m.id for m in cluster.members}


def test_listing_shape_and_review_cycle(library):
    listing = review.list_clusters(library)
    doc = listing.to_json()
    assert set(doc) == {"clusters", "noise"}
    keys = {"id", "size", "members", "representatives", "cohesion", "suggested_name"}
    keys |= {"nearest_label", "nearest_label_similarity", "kind"}
    assert all(set(c) == keys for c in doc["clusters"])
    assert all(isinstance(p, str) for c in doc["clusters"] for p in c["members"])
    assert [c.size for c in listing.clusters] == [16, 14, 12, 10]  # "more of ant" last
    assert listing.clusters[-1].nearest_label == "ant"
    assert listing.clusters[-1].label == "ant" and listing.clusters[0].label is None
    assert listing.clusters[0].suggested_name == "thing"
    first, second = listing.clusters[0], listing.clusters[1]

    done = review.accept(library, first.id, "bee", exclude=[first.members[0].id])
    assert done.cluster.status == "accepted" and done.labelled == 15
    assert done.to_json()["labelled"] == 15 and done.to_json()["name"] == "bee"
    rows = [r for r in labels_of(library) if r[2] == "review"]
    assert len(rows) == 15 and {r[1] for r in rows} == {"bee"}
    assert first.members[0].id not in {r[0] for r in rows}

    again = review.list_clusters(library)  # labels changed: re-clustered, ids kept
    ids = [c.id for c in again.clusters]
    assert first.id not in ids and second.id in ids
    with pytest.raises(review.ClusterReviewed):
        review.reject(library, first.id)

    review.merge(library, second.id, "ant")
    assert sum(r[1] == "ant" for r in labels_of(library)) == 6 + 14
    shown = review.show(library, second.id)
    assert shown.status == "merged" and shown.name == "ant"
    assert shown.to_json()["status"] == "merged" and shown.to_json()["children"] == []


def test_a_fresh_listing_reads_without_writing(library):
    assert review.current_listing(library) is None  # never clustered
    listing = review.list_clusters(library)
    with Library.open(library.root) as reader:  # read-only
        assert review.current_listing(reader) == listing
        assert review.current_listing(reader, min_size=3) is None  # another min size


def test_reject_then_recluster_keeps_members_apart(library):
    victim = review.list_clusters(library).clusters[0]
    review.reject(library, victim.id)
    assert victim.id not in [c.id for c in review.list_clusters(library).clusters]
    again = review.list_clusters(library, min_size=3)  # a new min size re-clusters
    for c in again.clusters:
        assert len(member_ids(c) & member_ids(victim)) <= 1


def test_split_makes_two_children_and_survives_reclustering(library):
    parent = review.list_clusters(library).clusters[0]
    kids = review.split(library, parent.id)
    assert len(kids) == 2 and sum(k.size for k in kids) == parent.size
    assert review.show(library, parent.id).children == [k.id for k in kids]
    listed = {c.id for c in review.list_clusters(library).clusters}
    assert {k.id for k in kids} <= listed and parent.id not in listed
    review.list_clusters(library, min_size=4)  # re-cluster: the split is re-applied
    again = {c.id: member_ids(c) for c in review.list_clusters(library).clusters}
    assert {k.id: member_ids(k) for k in kids}.items() <= again.items()


def test_bad_input_changes_nothing(library):
    cluster = review.list_clusters(library).clusters[0]
    cid = cluster.id
    everyone = [m.id for m in cluster.members]
    before = labels_of(library)
    bad = [
        (review.BadName, lambda: review.accept(library, cid, "   ")),
        (review.BadName, lambda: review.accept(library, cid, "ANT")),
        (review.UnknownLabel, lambda: review.merge(library, cid, "wasp")),
        (review.NotAMember, lambda: review.members_at(library, cid, ["/nope.jpg"])),
        (review.NotAMember, lambda: review.accept(library, cid, "bee", exclude=[99999])),
        (review.ReviewError, lambda: review.accept(library, cid, "bee", exclude=everyone)),
        (review.ClusterNotFound, lambda: review.reject(library, 999)),
        (review.ReviewError, lambda: review.list_clusters(library, min_size=1)),
    ]
    for error, action in bad:
        with pytest.raises(error):
            action()
    assert labels_of(library) == before
    assert review.show(library, cid).status == "proposed"
    path = cluster.members[1].path
    assert review.members_at(library, cid, [path]) == [cluster.members[1].id]


def test_gone_clusters_and_nothing_to_cluster(tmp_path):
    x, blob = blobs([10, 10], seed=2)
    with Library.open(make_library(tmp_path / "a", x, [None] * 20), readonly=False) as lib:
        first = review.list_clusters(lib).clusters
        with lib.catalog.transaction() as conn:
            conn.execute("DELETE FROM images WHERE path LIKE '/img/00%'")  # ten images gone
            lib.catalog.bump_content_version(conn)
        survivors = {c.id for c in review.list_clusters(lib).clusters}
        gone = [c.id for c in first if c.id not in survivors]
        assert gone
        with pytest.raises(review.ClusterNotFound, match="gone"):
            review.accept(lib, gone[0], "x")
        with pytest.raises(review.ClusterNotFound, match="gone"):
            review.members_at(lib, gone[0], ["/img/001.jpg"])
    labelled = make_library(tmp_path / "b", x[:3], ["a", "b", "c"])
    with Library.open(labelled, readonly=False) as lib:
        with pytest.raises(review.NothingToCluster, match="all 3 images"):
            review.list_clusters(lib)
    empty = make_library(tmp_path / "c", x[:0], [])
    with Library.open(empty, readonly=False) as lib:
        with pytest.raises(review.NothingToCluster, match="no images"):
            review.list_clusters(lib)


def _undo_migrations_after_3(conn):
    """What the migrations after the cluster tables added, taken out again."""
    for table in (
        "kept_labels",
        "duplicate_pairs",
        "hidden_images",
        "keep_marks",
        "removed_files",
        "boxes",
        "kept_boxes",
        "dismissed_suggestions",
        "image_hashes",
        "kept_cluster_members",
        "unlabelled_hashes",
        "kept_marks",
    ):
        conn.execute(f"DROP TABLE {table}")
    for table, column in (("errors", "max_pixels"), ("images", "dev"), ("images", "ino")):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def test_a_library_clustered_before_the_migration_keeps_its_decisions(tmp_path):
    """Before the cluster tables were a catalog migration, the first write created them;
    such a library reads as it was, and read-only before any migration it has no clusters."""
    import sqlite3

    from lookalike.indexer.store.catalog import MIGRATIONS

    x, _blob = blobs([10, 10], seed=2)
    root = make_library(tmp_path / "lib", x, [None] * 20)
    with sqlite3.connect(root / "catalog.sqlite") as conn:  # back to schema 2
        for table in ("cluster_state", "cluster_noise", "cluster_members", "clusters"):
            conn.execute(f"DROP TABLE {table}")
        _undo_migrations_after_3(conn)
        conn.execute("PRAGMA user_version = 2")
    with Library.open(root) as reader:  # read-only: no migration, no tables
        assert review.current_listing(reader) is None
        with pytest.raises(review.ClusterNotFound):
            review.show(reader, 1)
    with sqlite3.connect(root / "catalog.sqlite") as conn:  # the tables as code made them
        conn.executescript(MIGRATIONS[2])
        conn.execute(
            "INSERT INTO clusters (id, status, name, cohesion, promise, created) "
            "VALUES (7, 'rejected', NULL, 0.5, 1.0, 0)"
        )
    with Library.open(root, readonly=False) as lib:  # migrates to 3
        assert lib.catalog.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert review.show(lib, 7).status == "rejected"
