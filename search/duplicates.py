"""Look-alike groups (`duplicates --look-alikes`): connected components of "more similar
than a threshold". Verified copies of one picture are lookalike.search.copy_groups.

Every indexed vector is looked up in the index (kNN, ``neighbours`` at a time), the
pairs scoring at least the threshold are joined with a union-find, and the
components of two or more images are the groups, largest first. Memory grows with
the number of images that have a near-duplicate, never with N x N: there is no
similarity matrix and no unbounded range-search result (a library of 10,000 copies
of one photo would make a range search return 10^8 pairs). A group larger than
``neighbours`` still comes out whole, because its members link up through chains.

The default threshold was chosen on copies of the dev images against distinct images
(scripts/bench_look_alikes.py: 80 originals x 4 copies among 2,113 images, 3 seeds):
pair F1 peaks at 0.86 (precision 0.81, recall 0.88; F1 0.835-0.842 from 0.85 to 0.87).
Recall per edit at 0.86: resized to 70% 0.98, JPEG quality 30 0.99, cropped 3-6% a side
0.97, all three 0.67. Precision is a lower bound: nearly all the "false" pairs are
distinct Caltech files that are near-copies of each other (stop signs, yin-yang
symbols). Copies much smaller than the model's 224 px input (thumbnails) score lower
(halved ~300 px images: recall 0.70 at 0.86). The threshold belongs to the embedding:
re-measure it when the descriptor changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import Catalog
from lookalike.indexer.store.vector_index import VectorIndex

# Cosine similarity at or above which two images count as near-duplicates: the best F1
# on generated copies with the default CNN embedding (see the module docstring).
DEFAULT_THRESHOLD = 0.86
# Neighbours looked up per image; more only matters for groups so large and tight that
# chains cannot connect them (they still connect: every member links to 16 others).
NEIGHBOURS = 16
BATCH = 2048
DUP_NPROBE = 2  # IVF lists scanned per image


class DuplicateMember(NamedTuple):
    id: int
    path: str
    score: float  # cosine similarity to the group's first member (1.0 for itself)


class DuplicateGroup(NamedTuple):
    members: list[DuplicateMember]  # the first member is the one with the smallest id

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.members]


class UnionFind:
    """Disjoint sets over the ids that were ever joined (a dict, not an N-sized array)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            parent[root] = parent[parent[root]]  # path halving
            root = parent[root]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        sa, sb = self.size.get(ra, 1), self.size.get(rb, 1)
        if sa < sb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] = sa + sb
        self.size.pop(rb, None)

    def groups(self) -> list[list[int]]:
        """Components with two or more members, largest first, members by id."""
        comps: dict[int, list[int]] = {}
        for x in self.parent:
            comps.setdefault(self.find(x), []).append(x)
        out = [sorted(c) for c in comps.values() if len(c) > 1]
        out.sort(key=lambda c: (-len(c), c[0]))
        return out


def check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not (0.0 < threshold <= 1.0):  # also rejects NaN
        raise BadQuery(f"the duplicate threshold must be in (0, 1], not {threshold:g}")
    return threshold


def duplicate_pairs(
    index: VectorIndex,
    threshold: float,
    neighbours: int = NEIGHBOURS,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(a_ids, b_ids) arrays of pairs scoring >= threshold, one batch of images at a time."""
    threshold = check_threshold(threshold)
    total, done = index.ntotal, 0
    # Scores are cosine similarities up to float rounding (and SQ8 coding for IVF): an
    # exact copy may score 0.9995, so a threshold of 1.0 means "within 1e-3".
    cut = min(threshold, 1.0 - 1e-3)
    for ids, vectors in index.iter_vectors(batch):
        # For IVF, the SQ8 scores (within ~1e-3 of exact) decide, without catalog reads,
        # and two lists suffice: a copy sits next to its original, in its list or, at a
        # border, in the next one (3-4x faster than the search default on small lists).
        scores, found = index.search(vectors, neighbours + 1, rerank=0, nprobe=DUP_NPROBE)
        keep = (found >= 0) & (found != ids[:, None]) & (scores >= cut)
        rows, cols = np.nonzero(keep)
        yield ids[rows], found[rows, cols]
        done += len(ids)
        if on_progress:
            on_progress(done, total)


def duplicate_groups(
    index: VectorIndex,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int = NEIGHBOURS,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Groups of near-duplicate ids (connected components), largest first."""
    uf = UnionFind()
    for a, b in duplicate_pairs(index, threshold, neighbours, on_progress=on_progress):
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            uf.union(x, y)
    return uf.groups()


def find_duplicates(
    index: VectorIndex,
    catalog: Catalog,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int = NEIGHBOURS,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[DuplicateGroup]:
    """Near-duplicate groups of the images in ``index``, with their catalog paths."""
    groups = duplicate_groups(index, threshold, neighbours, on_progress)
    paths = catalog.paths(i for g in groups for i in g)
    return describe_groups(index, groups, paths)


def describe_groups(
    index: VectorIndex, groups: list[list[int]], paths: dict[int, str]
) -> list[DuplicateGroup]:
    """Typed groups with paths and each member's similarity to the group's first member."""
    out = []
    for ids in groups:
        ids = [i for i in ids if i in paths]  # an image removed since the index was read
        if len(ids) < 2:
            continue
        scores = _similarities(index, ids)
        members = [
            DuplicateMember(i, paths[i], float(min(s, 1.0)))
            for i, s in zip(ids, scores, strict=True)
        ]
        out.append(DuplicateGroup(members))
    out.sort(key=lambda g: (-g.size, g.members[0].id))
    return out


def _similarities(index: VectorIndex, ids: list[int]) -> np.ndarray:
    vectors = index.reconstruct(np.array(ids, dtype=np.int64))
    scores = vectors @ vectors[0]
    scores[0] = 1.0
    return scores
