"""Cluster proposals: clustering the unlabelled images into the catalog, keeping decisions.

A listing re-clusters only when the library's images, human labels or hidden images (or
--min-size) changed since the last clustering (:func:`is_fresh`); a hidden image is in
no proposal. Re-clustering keeps what was
decided: a new cluster whose members overlap a current proposal's by Jaccard >= 0.5
keeps that proposal's id; rejected clusters' members are kept apart; a split is
re-applied to the cluster that matches the split one; accepted and merged clusters
are labels now.

The tables are ``lookalike.indexer.store.clusters``; the review actions over them,
:mod:`lookalike.classifier.clustering.review`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lookalike.classifier.clustering.discovery import cluster_vectors, describe
from lookalike.classifier.clustering.errors import NothingToCluster
from lookalike.classifier.clustering.matching import match_ids, partition_like
from lookalike.classifier.clustering.params import ClusterParams
from lookalike.indexer.store.clusters import ClusterStore, NewCluster
from lookalike.indexer.store.image_marks import hidden_ids
from lookalike.indexer.store.library import Library

# Part of the fingerprint: a change of algorithm re-clusters stored libraries.
ALGORITHM = "graph-average-linkage-5"  # 2: new groups near a label fold into it; 3: or linked
# to it; 4: a new piece linked to a larger new cluster joins it, images move by kNN vote;
# 5: the fold and the join by links at 0.08 of the links

Known = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]  # (sorted ids, their vectors)
Group = tuple[set[int], str | None]  # (member ids, the label it is more of or None)


def recluster(library: Library, min_size: int) -> None:
    """Cluster every image without a human label and store the proposals (a writable
    library; see the module docstring)."""
    cat = library.catalog
    store = ClusterStore(cat)
    ids, vectors = cat.vectors()
    labels = cat.labels()
    labelled = np.array([i in labels for i in ids.tolist()], dtype=bool)
    # Hidden images (image_marks: a person took them out of results) are in no proposal;
    # their labels still teach.
    hidden = np.isin(ids, np.fromiter(hidden_ids(cat), np.int64)) & ~labelled
    if not len(ids) or (labelled | hidden).all():
        raise NothingToCluster(len(ids))
    ids, vectors, labelled = ids[~hidden], vectors[~hidden], labelled[~hidden]
    uid = ids[~labelled]
    pos = {int(i): k for k, i in enumerate(uid)}
    apart = [
        np.array([pos[m] for m in members if m in pos], dtype=np.int64)
        for members in store.member_sets("rejected").values()
    ]
    result = cluster_vectors(
        vectors[~labelled],
        vectors[labelled],
        [labels[i] for i in ids[labelled].tolist()],
        ClusterParams(min_size=min_size),
        apart,
    )
    groups: list[Group] = [(set(uid[c.members].tolist()), c.label) for c in result.clusters]
    _reapply_splits(library, groups)
    groups, dropped = _worth_proposing(groups, store.member_sets("rejected"), min_size)
    described = describe_groups(library, groups, known=(ids, vectors))
    old = store.member_sets("proposed")
    noise = uid[result.noise].tolist() + sorted(dropped)
    store_proposals(library, described, old, noise=noise)
    with cat.transaction() as conn:
        store.set_state(conn, {"fingerprint": fingerprint(library, min_size), "min_size": min_size})


def _worth_proposing(
    groups: list[Group], rejected: dict[int, set[int]], min_size: int
) -> tuple[list[Group], set[int]]:
    """The groups to propose, and the members of the others: a new category below
    ``min_size`` (a re-applied split can leave one), or a group whose members all lie in
    one rejected cluster (a rejected group never comes back with the same members)."""
    keep, dropped = [], set()
    for members, label in groups:
        small = label is None and len(members) < min_size
        if small or any(members <= r for r in rejected.values()):
            dropped |= members
        else:
            keep.append((members, label))
    return keep, dropped


def _reapply_splits(library: Library, groups: list[Group]) -> None:
    """A group like a split cluster is divided as its children were (in place)."""
    cat, store = library.catalog, ClusterStore(library.catalog)
    for parent, members in store.member_sets("split").items():
        children = _children(store, parent)
        for k, (group, label) in enumerate(groups):
            if not children or _jaccard(group, members) < 0.5:
                continue
            gid, gvec = cat.vectors(sorted(group))
            kids = [cat.vectors(sorted(c))[1] for c in children]
            parts = partition_like(gid, gvec, children, kids)
            groups[k : k + 1] = [(set(p.tolist()), label) for p in parts]
            break


def describe_groups(
    library: Library, groups: Sequence[Group], known: Known | None = None
) -> list[NewCluster]:
    """The proposals for member groups (cohesion, representatives, nearest label,
    suggested name), best first.

    ``known``: (sorted ids, their vectors) already read, to avoid reading them again.
    """
    cat = library.catalog
    ids = np.array(sorted(set().union(*[g for g, _l in groups])) if groups else [], np.int64)
    label_of = cat.labels()
    lab_wanted = np.array(sorted(label_of), dtype=np.int64)
    if known is None:
        known = cat.vectors(np.union1d(ids, lab_wanted))
    found, vectors = _subset(known, ids)
    lab_ids, lab_vecs = _subset(known, lab_wanted)
    pos = {int(i): k for k, i in enumerate(found)}
    index_groups = [(np.array([pos[m] for m in g if m in pos]), lab) for g, lab in groups]
    index_groups = [(g, lab) for g, lab in index_groups if len(g)]
    clusters = describe(vectors, lab_vecs, [label_of[int(i)] for i in lab_ids], index_groups)
    names = _suggested_names(library, [found[c.members] for c in clusters])
    return [
        NewCluster(
            members=found[c.members].tolist(),
            representatives=found[c.representatives].tolist(),
            label=c.label,
            suggested_name=name,
            nearest_label=c.nearest_label,
            nearest_label_similarity=c.nearest_label_similarity,
            cohesion=c.cohesion,
            promise=c.promise,
        )
        for c, name in zip(clusters, names, strict=True)
    ]


def store_proposals(
    library: Library,
    clusters: Sequence[NewCluster],
    old: dict[int, set[int]],
    parent: int | None = None,
    noise: Sequence[int] | None = None,
) -> list[int]:
    """Write proposals, reusing ``old`` ids by overlap; the rest of ``old`` is gone.

    With ``parent``, the clusters are its split children and it becomes 'split' in the
    same transaction. Returns the clusters' ids.
    """
    reuse = match_ids(old, [set(c.members) for c in clusters])
    kept = {cid for cid in reuse if cid is not None}
    gone = [cid for cid in old if cid not in kept]
    with library.catalog.transaction() as conn:
        return ClusterStore(library.catalog).write(conn, clusters, reuse, gone, parent, noise)


def fingerprint(library: Library, min_size: int) -> str:
    """Changes when the images, the human labels, the hidden images or ``min_size``
    change."""
    cat = library.catalog
    h = hashlib.sha1(f"{ALGORITHM}|{min_size}|{cat.content_version()}|".encode())
    for image_id, label in cat.labels().items():
        h.update(f"{image_id}\t{label}\n".encode())
    for image_id in sorted(hidden_ids(cat)):
        h.update(f"hidden {image_id}\n".encode())
    return h.hexdigest()


def stored_min_size(library: Library) -> int | None:
    """The --min-size of the last clustering (None before the first)."""
    return ClusterStore(library.catalog).state().get("min_size")


def is_fresh(library: Library, min_size: int | None) -> bool:
    """True when the stored proposals were computed from the library as it is now
    (with ``min_size``, or the last one when None)."""
    state = ClusterStore(library.catalog).state()
    if not state:
        return False
    size = min_size or state["min_size"]
    return size == state["min_size"] and fingerprint(library, size) == state["fingerprint"]


def _subset(known: Known, wanted: np.ndarray) -> Known:
    """The rows of ``known`` = (ids, vectors) for the ``wanted`` ids present."""
    ids, vectors = known
    if len(ids) > 1 and (np.diff(ids) < 0).any():
        order = np.argsort(ids)
        ids, vectors = ids[order], vectors[order]
    at = np.clip(np.searchsorted(ids, wanted), 0, max(len(ids) - 1, 0))
    hit = (ids[at] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    return wanted[hit], vectors[at[hit]]


def _suggested_names(library: Library, groups: list[np.ndarray]) -> list[str | None]:
    """The ImageNet class with the most summed score over each group's members."""
    top = library.catalog.predictions_of(sorted({int(i) for g in groups for i in g}))
    names = []
    for g in groups:
        score: dict[str, float] = {}
        for i in g:
            for name, s in top.get(int(i), ()):
                score[name] = score.get(name, 0.0) + s
        names.append(max(score, key=lambda k: (score[k], k)) if score else None)
    return names


def _children(store: ClusterStore, parent: int) -> list[set[int]]:
    members = [{m.image_id for m in store.members(k)} for k in store.children(parent)]
    return [m for m in members if m]


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / max(len(a | b), 1)
