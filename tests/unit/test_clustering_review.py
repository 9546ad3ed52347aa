"""Cluster proposals on long-tailed libraries (issue 17) and review side effects (issue 14).

One proposal per label for the unlabelled images of a labelled class, whatever its size;
splits into natural parts never below the minimum size; rejected groups never back with
the same members; --min-size never silently reused; accept and merge replace predicted
tags and move the labels version on. Synthetic blobs stand in for embeddings.
"""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.classifier.clustering import review
from lookalike.classifier.clustering.discovery import cluster_vectors
from lookalike.classifier.clustering.matching import natural_parts
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.classifier.clustering.proposals import describe_groups, store_proposals
from lookalike.indexer.store.catalog import NewImage
from lookalike.indexer.store.library import Library
from tests.support.vectors import unit
from tests.unit.test_clustering import DIM, blobs, make_library


def big_class(seed=0, pieces=4, per_piece=40):
    """A labelled class of several tight sub-modes (labels in the first only) and a new
    class far away: (unlabelled, labelled, truth of the unlabelled)."""
    rng = np.random.default_rng(seed)
    centre, other = unit(rng.normal(size=(2, DIM)))
    subs = unit(centre + 0.45 * unit(rng.normal(size=(pieces, DIM))))
    x, piece = blobs([per_piece] * pieces + [30], spread=0.25, seed=seed + 1,
                     centres=[*subs, other])  # fmt: skip
    labelled = np.zeros(len(x), bool)
    labelled[np.flatnonzero(piece == 0)[:8]] = True
    truth = (piece[~labelled] == pieces).astype(int)  # 0: the labelled class, 1: new
    return x[~labelled], x[labelled], truth


def test_a_large_class_cut_in_pieces_is_one_proposal_for_its_label():
    unl, lab, truth = big_class()
    res = cluster_vectors(unl, lab, ["ant"] * len(lab))
    kinds = [(c.label, len(c.members)) for c in res.clusters]
    assert kinds[0][0] is None  # the new category first
    ant = [c for c in res.clusters if c.label == "ant"]
    assert len(ant) == 1 and set(truth[ant[0].members]) == {0}
    assert len(ant[0].members) >= 0.9 * (truth == 0).sum(), kinds
    # Without folding, the pieces come as new categories of their own (the test can fail).
    loose = cluster_vectors(unl, lab, ["ant"] * len(lab), ClusterParams(fold_similarity=None))
    assert sum(c.label is None for c in loose.clusters) > 1


def test_natural_parts_finds_how_many_and_never_goes_below_the_min_size():
    x, blob = blobs([10, 10, 10], spread=0.3)
    parts = natural_parts(x, 5)
    assert parts is not None and len(parts) == 3
    assert sorted(sorted(set(blob[p])) for p in parts) == [[0], [1], [2]]
    assert natural_parts(x[:9], 5) is None  # 9 < 2 x 5
    assert natural_parts(np.repeat(x[:1], 12, axis=0), 5) is None  # all alike


@pytest.fixture
def library(tmp_path):
    x, blob = blobs([10, 10, 10, 12], spread=0.3, seed=4)
    labels = ["ant" if b == 3 and k % 2 else None for k, b in enumerate(blob)]
    with Library.open(make_library(tmp_path / "lib", x, labels), readonly=False) as lib:
        yield lib


def test_kinds_and_a_split_into_natural_parts(library):
    listing = review.list_clusters(library, min_size=3)
    assert [c.kind for c in listing.clusters] == ["new", "new", "new", "label"]
    assert listing.clusters[-1].to_json()["kind"] == "label"
    assert listing.clusters[-1].to_json()["nearest_label"] == "ant"
    three = [{m.id for m in c.members} for c in listing.clusters[:3]]
    # A proposal holding the three new blobs (as a coarser clustering would make it):
    # split gives them back, three parts, not two.
    whole = describe_groups(library, [(set().union(*three), None)])
    (cid,) = store_proposals(library, whole, {c.id: {m.id for m in c.members}
                                              for c in listing.clusters})  # fmt: skip
    parts = review.split(library, cid)
    assert sorted(map(sorted, ({m.id for m in p.members} for p in parts))) == sorted(
        map(sorted, three)
    )
    assert all(p.kind == "new" and p.parent == cid for p in parts)


def test_min_size_is_not_reused_and_rejected_groups_do_not_come_back(library):
    small = review.list_clusters(library, min_size=3)
    assert small.min_size == 3
    default = review.list_clusters(library)  # not the 3 of the last run
    assert default.min_size == 5
    victim = default.clusters[0]
    review.reject(library, victim.id)
    for min_size in (2, 3, 5):
        again = review.list_clusters(library, min_size=min_size, refresh=True)
        for c in again.clusters:
            members = {m.id for m in c.members}
            assert not members <= {m.id for m in victim.members}
            assert len(members & {m.id for m in victim.members}) <= 1


def test_a_rejected_group_removed_and_indexed_again_stays_rejected(library):
    """Removing a rejected group's images (a folder moved away, `lookalike remove`) and
    indexing the same files again brings back the group's members, not the proposal."""
    victim, emptied = review.list_clusters(library).clusters[:2]
    review.reject(library, victim.id)
    cat = library.catalog
    with cat.transaction() as conn:
        cat.remove_images(conn, [m.id for m in emptied.members])
    with pytest.raises(review.ReviewError, match="no images left"):
        review.accept(library, emptied.id, "bee")
    ids = sorted(m.id for m in victim.members)
    rows = cat.images(ids)
    vectors = dict(zip(*cat.vectors(ids), strict=True))
    with cat.transaction() as conn:
        cat.remove_images(conn, ids)
    assert review.show(library, victim.id).size == 0
    again = [NewImage(rows[i]["path"], 1, 1, rows[i]["hash"], 1, 1, vectors[i], None) for i in ids]
    with cat.transaction() as conn:
        back = cat.write_images(conn, again)
    assert set(back).isdisjoint(ids)  # new ids: the same content, indexed again
    shown = review.show(library, victim.id)
    assert shown.status == "rejected" and {m.id for m in shown.members} == set(back)
    for c in review.list_clusters(library, refresh=True).clusters:
        assert not {m.id for m in c.members} <= set(back)


def test_accept_and_merge_replace_predicted_tags_and_move_the_labels_version(library):
    listing = review.list_clusters(library)
    new, more = listing.clusters[0], listing.clusters[-1]
    cat = library.catalog
    ids = [m.id for c in (new, more) for m in c.members]
    with cat.transaction() as conn:
        cat.replace_tags(conn, [(i, "ant", 0.6) for i in ids], head="knn", at=1.0)
    version = cat.labels_version()
    review.accept(library, new.id, "bee")
    assert cat.labels_version() > version
    assert all(cat.tag_row(m.id) is None for m in new.members)
    assert all(cat.tag_row(m.id) is not None for m in more.members)
    version = cat.labels_version()
    review.merge(library, more.id, " ANT ")  # labels match case-insensitively
    assert cat.labels_version() > version
    assert cat.label_names() == ["ant", "bee"]
    assert all(cat.tag_row(m.id) is None for m in more.members)


def test_labels_written_again_change_nothing_new_ones_replace_tags(library):
    """Catalog.set_labels, as folder labels (index --labels-from-folders) write them."""
    cat = library.catalog
    ids = [int(i) for i in cat.unlabelled_ids()[:4]]
    with cat.transaction() as conn:
        cat.replace_tags(conn, [(i, "ant", 0.6) for i in ids], head="knn", at=1.0)
    version = cat.labels_version()
    with cat.transaction() as conn:
        assert cat.set_labels(conn, [(i, "fly") for i in ids[:2]], origin="folder") == ids[:2]
    assert cat.labels_version() == version + 1
    assert [cat.tag_row(i) is None for i in ids] == [True, True, False, False]
    with cat.transaction() as conn:  # the next index run writes the same folder labels
        assert cat.set_labels(conn, [(i, "fly") for i in ids[:2]], origin="folder") == []
    assert cat.labels_version() == version + 1


@pytest.mark.parametrize(
    "case", ["one label", "every label one class", "one class 95%", "labels of deleted images"]
)
def test_bad_libraries_give_proposals_or_a_clear_error(tmp_path, case):
    """Issue 17's bad input: nothing crashes, nothing half-applied."""
    sizes = {"one class 95%": [190, 5, 5]}.get(case, [20, 20, 20])
    x, blob = blobs(sizes, spread=0.3, seed=7)
    if case == "one label":
        labels = ["ant" if k == 0 else None for k in range(len(x))]
    elif case == "one class 95%":
        labels = ["ant" if b == 0 and k % 10 == 0 else None for k, b in enumerate(blob)]
    else:
        labels = ["ant" if b == 0 and k < 6 else None for k, b in enumerate(blob)]
    root = make_library(tmp_path / "lib", x, labels)
    with Library.open(root, readonly=False) as lib:
        if case == "labels of deleted images":
            with lib.catalog.transaction() as conn:
                lib.catalog.remove_images(conn, [1, 2, 3])
        listing = review.list_clusters(lib)
        kinds = {c.kind for c in listing.clusters}
        assert "new" in kinds
        ant = [c for c in listing.clusters if c.kind == "label"]
        assert len(ant) <= 1 and all(c.label == "ant" for c in ant)
        everyone = {m.id for c in listing.clusters for m in c.members} | {
            m.id for m in listing.noise
        }
        assert everyone == set(lib.catalog.unlabelled_ids())
        if case == "one class 95%":  # the big class is one proposal, not pieces
            assert len(ant) == 1 and ant[0].size >= 0.9 * (190 - 19)


def test_fifteen_and_fifteen_images_of_two_new_classes_are_two_clusters():
    """A small library keeps its geometry: no PCA centring on the mean of two classes."""
    rng = np.random.default_rng(11)
    common = unit(rng.normal(size=256))  # embeddings share a large common direction
    centres = unit(1.5 * common + unit(rng.normal(size=(2, 256))))
    # Within a class cosine ~0.6, between the two ~0.4, as for real embeddings.
    x = np.vstack([unit(c + 0.9 * rng.normal(size=(15, 256)) / 16) for c in centres])
    truth = np.repeat([0, 1], 15)

    def pure_pairs(res):
        return sum(len(set(truth[c.members])) == 1 and len(c.members) >= 12 for c in res.clusters)

    assert pure_pairs(cluster_vectors(x)) == 2
    centred = cluster_vectors(x, params=ClusterParams(pca_min_rows=0))  # the test can fail
    assert pure_pairs(centred) < 2


def test_clustering_during_an_index_run_fails_cleanly_and_keeps_the_proposals(tmp_path):
    """While another process holds the writer lock (an index run), proposals are never
    made from the half-indexed library: LibraryBusy, the stored ones unchanged."""
    from lookalike.indexer.errors import LibraryBusy

    unl, lab, _ = big_class()
    x = np.vstack([lab, unl])
    labels = ["ant"] * len(lab) + [None] * len(unl)
    root = make_library(tmp_path / "lib", x, labels)
    with Library.open(root, readonly=False) as lib:
        before = [c.id for c in review.list_clusters(lib).clusters]
    with Library.open(root, readonly=False) as writer:
        writer.lock()  # an index run in progress
        with Library.open(root, readonly=False) as lib:
            with pytest.raises(LibraryBusy, match="another process is writing"):
                review.list_clusters(lib, refresh=True)
            assert [c.id for c in review.stored_listing(lib)[0].clusters] == before
        writer.unlock()
    with Library.open(root, readonly=False) as lib:
        assert review.list_clusters(lib, refresh=True).clusters


def test_a_hidden_image_is_in_no_proposal_until_shown_again(tmp_path):
    """Hiding an image (the duplicates page) re-clusters without it; showing it again
    brings it back into the proposals."""
    from lookalike.indexer.store.image_marks import set_hidden

    unl, lab, _ = big_class()
    x = np.vstack([lab, unl])
    root = make_library(tmp_path / "lib", x, ["ant"] * len(lab) + [None] * len(unl))

    def placed(lib) -> set[int]:
        listing = review.list_clusters(lib)
        return {m.id for c in listing.clusters for m in c.members} | {m.id for m in listing.noise}

    with Library.open(root, readonly=False) as lib:
        everyone = placed(lib)
        one = min(everyone)
        with lib.catalog.transaction() as conn:
            set_hidden(conn, one, True)
        assert placed(lib) == everyone - {one}
        with lib.catalog.transaction() as conn:
            set_hidden(conn, one, False)
        assert placed(lib) == everyone
