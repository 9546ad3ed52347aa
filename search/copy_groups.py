"""Verified duplicate groups: copies of one picture, checked geometrically.

The semantic grouping (lookalike.search.duplicates) links images whose CNN vectors are
close, so look-alikes of one kind chain into one "duplicate" group. Here the vectors
only propose candidates: each image's ``neighbours`` nearest above a low cosine
(``threshold``; more of them, larger images only, for a small image: SMALL_SIDE,
TINY_SIDE), each image's nearest perceptual hashes (lookalike.search.image_hash: they
find the thumbnails the CNN vector misses), plus the copy descriptor's nearest
where the library has copy detection. The candidate pairs are then verified as search
verifies its results (lookalike.search.rerank: ORB keypoints, a similarity transform
fit with RANSAC, both orientations -- the mirrored one's descriptors computed at the
keypoints mirrored, not detected anew -- thumbnails compared whole), then by its pixels
(search/pixels.py: the whole overlap and each part of it must agree, so two photos of
one scene a moment apart are not one picture; a recoloured copy, whose gray levels
change region by region, by its edges), and only verified pairs group. Each image is
decoded once and its features computed once (PairVerifier), for up to KEPT images in
memory at a time. A small image's deeper neighbours, there to find its original, are
verified only when none of its other candidates verified it against a larger image, or
when its partners verified with them (the rest of its group). A thumbnail (at most
``small_query`` pixels on its longer side) that still verifies with no larger image is
then searched for as a crop of each of its candidates (search/crop_search.py: a corner
of a photo shrunk to 40 x 30 pixels has too few pixels for ORB), and a copy of those it
correlates with about best (CROP_MARGIN); each link found makes more deeper pairs worth
verifying, until none is found.

Groups are stars, not connected components: images are taken best first (the one to
keep: the whole picture before an enlarged crop of it, then largest, least compressed,
original format), and each takes the images not yet
grouped that verify against it directly. A chain of look-alikes (a verifies with b, b
with c) never joins a and c unless they verify with each other's best image.

Each member says how it relates to the group's best image (``kind``, see match_kind
and colours_changed): ``identical`` (the same file content), ``re-encoded`` (same pixel
size), ``resized``, ``cropped`` (one shows part of the other), ``edited`` (mirrored,
turned, its gray levels or its colours changed); and its score (matches consistent with
one transform, ``inliers``, and the vectors' cosine).

Verdicts are kept in the catalog (indexer/store/duplicate_pairs.py): a later pass
verifies only the pairs it has not seen with both images unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import load_image, luminance_table
from lookalike.indexer.store.catalog import Catalog, ImageRow
from lookalike.indexer.store.copy_vectors import CopyIndex
from lookalike.indexer.store.duplicate_pairs import (
    Pair,
    forget_verdicts,
    known_verdicts,
    write_verdicts,
)
from lookalike.indexer.store.image_hashes import forget_hashes, known_hashes, write_hashes
from lookalike.indexer.store.image_marks import hidden_ids, kept_ids
from lookalike.indexer.store.vector_index import VectorIndex
from lookalike.search.duplicates import check_threshold, duplicate_pairs
from lookalike.search.image_hash import (
    BAND,
    hash_coefficients,
    hash_pairs,
    image_hashes,
    stacked_views,
)
from lookalike.search.rerank import (
    Candidate,
    QueryFeatures,
    Reranker,
    RerankOptions,
    Verification,
)

log = logging.getLogger(__name__)

# Cosine above which a kNN neighbour becomes a candidate pair (verified afterwards). On
# the bench's two-edit copies (scripts/bench_duplicates.py, seed 0) the candidate stage
# holds 0.83 of the pairs at 0.4 (k 12), 0.69 at 0.6; 0.3 adds nothing more.
DEFAULT_CANDIDATE_THRESHOLD = 0.4
# Nearest neighbours per image proposed for verification. With the perceptual hashes
# (lookalike.search.image_hash) the candidate stage holds 0.917 of the bench's pairs at
# 10 (seed 1: 0.927), 0.917 at 8 (0.910), 0.913 at 6 (0.897) and 0.933 at 20 (36.5k,
# 30.8k, 25.0k and 63.5k pairs to verify); without them 0.823 at 10, 0.863 at 20.
CANDIDATES = 10
# The least agreement of a part (a 4 x 4 grid) of two verified images' overlap below
# which they are two photos of one scene (search/pixels.py: agreements). Of the verified
# pairs of the bench's seed 0, copies: 1 of 256 below 0.3 (3 below 0.4, 6 below 0.5);
# the Faces class's same person before the same wall a moment apart: 15 of 30 (17, 18);
# other verified pairs (mostly genuine duplicates of the dev data): 0 of 80.
SAME_PARTS = 0.3
# The gray-level agreement from which a match whose gray levels disagree is still a
# copy when its edges agree (search/pixels.py: edge_agreements; overall 0.75 and 0.5 in
# every part): recoloured copies. Of the bench's pairs that the gray levels reject
# (scripts/bench_duplicates.py, strong edits), it takes 2 of 6 copies and 6 of 1,664
# other matches (seed 0; seed 1: 5 of 12 copies, 6 of 2,324 others). Those 6 are one
# picture re-edited (a piano cut out on another background, a dragonfly recoloured, a
# chair cropped from a catalogue page), one person before two backgrounds and two
# different stop signs: the edges of a flat sign agree where its gray levels do not.
RECOLOURED = 0.8
# Inliers from which a match whose pixels agree is a copy (below the search's 15). Of
# the bench's matches with 8-14 inliers whose pixels agree: at 11 or more 1 copy and no
# other pair (seed 0; seed 1: 3 and none), at 10 or more 2 and 1 (3 and 1).
LEAST_CHECKED = 11
# What the stored verdicts were found with: a pass by another version verifies anew
# (4: thumbnails searched as crops, whose failed pairs "3" stored unsearched; 5: a
# larger image that shows part of the smaller one, enlarged, is "cropped", not "resized";
# 6: a recoloured copy is "edited"; 7: a larger image that shows part of the smaller one
# is stored as ENLARGED, so the whole picture is the one to keep).
VERIFIER = "7"
VERIFIER_KEY = "duplicates_verifier"
# How the stored perceptual hashes were computed (search/image_hash.py: SIDE, BAND and
# the decoding); hashes stored another way are computed anew.
HASHER = "1"
HASHER_KEY = "duplicates_hasher"
# Every other query descriptor is matched first; fewer than this many of them passing
# the ratio test is no match (RerankOptions.half_first). Of 12.5k matchings of each of
# the bench's seeds 0 and 1 (random candidate pairs and the copy pairs), every one with
# 11 or more inliers has 4 or more (the least: 4 and 6); 5 would lose one of them on
# seed 0, 7 four (none of them a copy pair). At 4 about 62% of the matchings go on to
# the rest: the matching costs 0.81x.
HALF_FIRST = 4
# Smaller than search's settings: a pass verifies every image, search only a few; a
# stricter pixel check (see RerankOptions.same_picture): a group must be one picture.
# mirror_keypoints: one ORB detection a query, not two (scripts/bench_duplicates.py,
# seeds 0 / 1: recall 0.903 / 0.907 against 0.907 / 0.903, other pairs unchanged; the
# features of an image 0.88x the CPU).
# A thumbnail that verifies against no larger image is searched for as a crop of each
# of its candidates (Reranker.verify_crop) covering this share of their side or more,
# and is a copy of those it correlates with within CROP_MARGIN of its best. On the
# bench (scripts/bench_duplicates.py, seeds 0 / 1) 14 / 13 thumbnails are searched in
# 2,435 / 2,365 pairs, and 6 / 6 crop+resize copies found (recall, with the fix of
# _add_role made at the same time: 0.903 -> 0.927, 0.907 -> 0.927); without the margin
# 24 more pairs of seed 0 "verify", nearly all of one 52 x 25 thumbnail of leopard fur
# with other leopards (correlations 0.90-0.98 against 0.99 with its original; the
# pixel check's parts are mostly blank in such a sliver).
CROP_LEAST = 0.3
CROP_MARGIN = 0.01
VERIFY_OPTIONS = RerankOptions(
    side=320,
    features=500,
    candidate_side=400,
    candidate_features=700,
    same_picture=0.9,
    pixel_check_all=True,
    same_parts=SAME_PARTS,
    recoloured=RECOLOURED,
    least_checked=LEAST_CHECKED,
    mirror_keypoints=True,
    half_first=HALF_FIRST,
    crop_least=CROP_LEAST,
)
KEPT = 10_000  # images whose features a pass keeps in memory at a time (PairVerifier)
# Pairs a verification thread takes at a time (pairs come sorted by their smaller id: a
# run is mostly the pairs of a few images, whose features that thread computes and uses
# while the others go on, instead of waiting for them). Same run, alternating, 2
# threads: the bench's whole pass (seed 1) 38.3 s wall and 71.9 CPU s at 64 against
# 40.3-43.6 s and 74.4-80.0 s one pair at a time; seed 0: 37.9 s and 71.4 CPU s at 256
# against 38.8-39.2 s and 72.6-73.2 s at 64.
RUN = 256
# A small image (longer side at most SMALL_SIDE of the library's median) is more often
# a crop or a shrunken copy, whose original its vector ranks far down: it gets
# SMALL_NEIGHBOURS vector candidates, larger images only. On the bench's copies
# (scripts/bench_duplicates.py) this adds about 11% more pairs to verify and brings 10
# (seed 0) and 6 (seed 1) more of the true pairs into the candidates.
SMALL_SIDE = 0.67
SMALL_NEIGHBOURS = 40
# A tiny image (at most TINY_SIDE of the median: a thumbnail, a sliver cut out) is
# searched deeper still, down to TINY_COSINE of the candidate threshold: at 0.25 of the
# median, 100 neighbours and the threshold itself, 4 more true pairs on seed 1 of the
# bench (all of which verify) for 3.5% more pairs, none on seed 0; at 0.35, 200 and
# 0.75 of it, 3 (seed 1) and 1 (seed 0) more that verify for 24% more pairs.
TINY_SIDE = 0.35
TINY_NEIGHBOURS = 200
TINY_COSINE = 0.75
SMALL_CHUNK = 10_000  # small images searched at a time (bounded memory at 1M images)
COPY_NEIGHBOURS = 4  # copy-descriptor neighbours per image proposed for verification
COPY_MIN_SCORE = 0.3  # ... at this copy-descriptor cosine or more
COPY_CHUNK = 20_000  # copy descriptors read at a time
# The file formats people keep originals in, best first; anything else after these.
FORMAT_RANK = {".tif": 0, ".tiff": 0, ".png": 1, ".bmp": 1, ".jpg": 2, ".jpeg": 2}

MAX_TURN = 2.0  # degrees of rotation above which a copy counts as edited
UNCHANGED = 0.95  # pixel agreement below which a copy counts as edited (colour, gray)
CROPPED = 0.93  # a copy covering less of the other image's area than this is cropped
SAME_FILE = 10_000  # the inliers recorded for two files of the same content
# Colours (colour_of, colours_changed). Of the bench's verified copies (seeds 0 and 1,
# scripts/bench_duplicates.py: copies grouped with their original, mirrored ones left
# out), over the overlap, the mean opponent colours of the 102 whose colours were not
# edited differ by at most 5.8 (95% below 3.4), and their spread by a ratio of at least
# 0.71 for 95%; at a mean shift above 6 or a ratio below 0.5 (from a spread of 3), none of
# them counts as recoloured and 224 of the 254 grayscale or colour-edited ones do (most
# of the rest: originals about gray already, or a mild hue shift); at 5, 2 and 227.
COLOUR_SIDE = 16
COLOUR_SHIFT = 6.0
GRAYER = 0.5
COLOURFUL = 3.0  # a spread below this in both: about gray, nothing to compare
# The stored kind of a pair whose larger image shows part of the smaller one, enlarged
# (dev bonsai 0019, cut from 0022 and scaled up): shown as "cropped", and the smaller
# image, the whole picture, is the one to keep (star_groups' ``inside``).
ENLARGED = "enlarged"


class Verdict(NamedTuple):
    """A verified pair: its consistent local matches and the kind of copy it is."""

    inliers: int
    kind: str  # see match_kind; "" when not verified


class CopyMember(NamedTuple):
    id: int
    path: str
    score: float  # cosine similarity to the group's best image (1.0 for itself)
    kind: str  # "best", "identical", "re-encoded", "resized", "cropped" or "edited"
    # consistent local matches with the best image (0 for itself, and for a file of the
    # same content: identical, not compared)
    inliers: int
    width: int
    height: int
    bytes: int


class CopyGroup(NamedTuple):
    members: list[CopyMember]  # the best image (the one to keep) first

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.members]

    @property
    def keep(self) -> int:
        return self.members[0].id


def candidate_pairs(
    index: VectorIndex,
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    neighbours: int = CANDIDATES,
    extra: Iterable[Pair] = (),
) -> set[Pair]:
    """Pairs of ids proposed by the vectors' kNN (and ``extra``), smaller id first."""
    check_threshold(threshold)
    out: set[Pair] = set()
    for a, b in duplicate_pairs(index, threshold, neighbours):
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        out.update(zip(lo.tolist(), hi.tolist(), strict=True))
    out.update((min(a, b), max(a, b)) for a, b in extra if a != b)
    return out


def all_candidates(
    index: VectorIndex,
    rows: Mapping[int, ImageRow],
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    neighbours: int = CANDIDATES,
    extra: Iterable[Pair] = (),
    hashes: bool = True,
) -> set[Pair]:
    """The candidate pairs of a pass over the images of ``rows``: the vectors' kNN,
    a small image's larger neighbours (small_image_pairs), ``extra`` and, with
    ``hashes``, each image's nearest perceptual hashes."""
    first, deep = staged_candidates(index, rows, threshold, neighbours, extra, hashes)
    return first | deep


def staged_candidates(
    index: VectorIndex,
    rows: Mapping[int, ImageRow],
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    neighbours: int = CANDIDATES,
    extra: Iterable[Pair] = (),
    hashes: bool = True,
    catalog: Catalog | None = None,
) -> tuple[set[Pair], set[Pair]]:
    """The candidate pairs of ``all_candidates`` in two stages: (the vectors' kNN,
    ``extra`` and the hashes' pairs; the small images' deeper pairs not among those),
    both within ``rows``. The second stage looks for the original of a small image
    that the first did not find (see find_copy_groups). With a (writable) ``catalog``,
    the hashes of unchanged images are read from it and new ones stored there."""
    more = set(extra)
    if hashes:
        if catalog is not None:
            more |= hash_pairs(*library_hashes(catalog, rows))
        else:
            more |= hash_pairs(*image_hashes({i: r["path"] for i, r in rows.items()}))
    first = candidate_pairs(index, threshold, neighbours, more)
    deep = small_image_pairs(index, rows, threshold)
    deep |= small_image_pairs(index, rows, threshold * TINY_COSINE, TINY_NEIGHBOURS, TINY_SIDE)
    first = {p for p in first if p[0] in rows and p[1] in rows}
    return first, {p for p in deep - first if p[0] in rows and p[1] in rows}


def library_hashes(catalog: Catalog, rows: Mapping[int, ImageRow]) -> tuple[np.ndarray, np.ndarray]:
    """``image_hashes`` of the images of ``rows``: those stored for unchanged files, the
    others computed and stored (indexer/store/image_hashes.py)."""
    if catalog.get_meta(HASHER_KEY) != HASHER:  # computed another way
        forget_hashes(catalog)
    found = known_hashes(catalog, rows, BAND)
    new = hash_coefficients({i: r["path"] for i, r in rows.items() if i not in found})
    write_hashes(catalog, new, rows)
    with catalog.transaction() as conn:
        catalog.set_meta(HASHER_KEY, HASHER, conn)
    found |= new
    return stacked_views({i: found[i] for i in rows if i in found})  # in the order of rows


def small_image_pairs(
    index: VectorIndex,
    rows: Mapping[int, ImageRow],
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    neighbours: int = SMALL_NEIGHBOURS,
    side: float = SMALL_SIDE,
) -> set[Pair]:
    """Pairs of each small image (longer side at most ``side`` of the median of
    ``rows``) with its ``neighbours`` nearest larger images above ``threshold``, smaller
    id first."""
    if not rows:
        return set()
    ids = np.array(list(rows), dtype=np.int64)
    sides = np.array([max(int(r["width"]), int(r["height"])) for r in rows.values()])
    small = ids[sides <= side * float(np.median(sides))]
    if not len(small):
        return set()
    areas = {i: _area(r) for i, r in rows.items()}
    out: set[Pair] = set()
    for start in range(0, len(small), SMALL_CHUNK):
        chunk = small[start : start + SMALL_CHUNK]
        scores, found = index.search(index.reconstruct(chunk), neighbours + 1, rerank=0)
        for a, row_scores, row_found in zip(chunk.tolist(), scores, found.tolist(), strict=True):
            for score, b in zip(row_scores.tolist(), row_found, strict=True):
                if b >= 0 and b != a and score >= threshold and areas.get(b, 0) > areas[a]:
                    out.add((min(a, b), max(a, b)))
    return out


class Prepared(NamedTuple):
    """What a pass verifies of one image: its features as the smaller image of a pair
    (the query) and as the larger one (the candidate); None for a role it never plays;
    and its colours (see colour_of)."""

    query: QueryFeatures | None
    candidate: Candidate | None
    colour: np.ndarray | None = None


def colour_of(image: Image.Image) -> np.ndarray:
    """The image's opponent colours (red-green, yellow-blue) at 16 x 16, float32 (2, 16,
    16): what its gray levels, which verification compares, do not show."""
    small = image.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BILINEAR)
    a = np.asarray(small).astype(np.float32)
    return np.stack([a[..., 0] - a[..., 1], 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]])


def colours_changed(
    small: ImageRow,
    large: ImageRow,
    seen: Verification,
    small_colour: np.ndarray | None,
    large_colour: np.ndarray | None,
    options: RerankOptions,
) -> bool:
    """Whether a verified copy had its colours changed (grayscale, a hue or saturation
    shift), which the gray levels verification compares do not show: over the part of
    the smaller image that lies in the larger one (under the match's transform; the
    whole frame without one), the mean opponent colours (colour_of) differ by more than
    COLOUR_SHIFT, or one image's colours vary less than GRAYER times the other's (and the
    other's at least COLOURFUL)."""
    if small_colour is None or large_colour is None:
        return False
    n = small_colour.shape[1]
    if seen.transform is None:  # the same frame
        mine, theirs = small_colour.reshape(2, -1), large_colour.reshape(2, -1)
    else:
        fw, fh = _fit_side(small, options.side)
        cw, ch = _fit_side(large, options.candidate_side)
        centres = (np.arange(n) + 0.5) / n
        xs, ys = np.meshgrid(centres * fw, centres * fh)
        points = np.stack([xs.ravel(), ys.ravel()], axis=1)
        mapped = points @ seen.transform[:, :2].T + seen.transform[:, 2]
        gx, gy = mapped[:, 0] / cw * n - 0.5, mapped[:, 1] / ch * n - 0.5
        inside = (gx >= 0) & (gx <= n - 1) & (gy >= 0) & (gy <= n - 1)
        if inside.sum() < n * n // 8:  # too little overlap to say
            return False
        import cv2  # heavy (OpenCV), as search/pixels.py: only once a pair verified

        mine = small_colour.reshape(2, -1)[:, inside]
        at_x, at_y = (g[inside].astype(np.float32)[:, None] for g in (gx, gy))
        theirs = np.stack([cv2.remap(c, at_x, at_y, cv2.INTER_LINEAR)[:, 0] for c in large_colour])
    if float(np.abs(mine.mean(axis=1) - theirs.mean(axis=1)).mean()) > COLOUR_SHIFT:
        return True
    a, b = float(mine.std(axis=1).sum()), float(theirs.std(axis=1).sum())
    return max(a, b) >= COLOURFUL and min(a, b) < GRAYER * max(a, b)


class PairVerifier:
    """Verifies pairs of library images with the search's Reranker.

    Each image is decoded once and its features computed once for the roles it plays
    (the smaller image of a pair is the query), kept for up to ``keep`` images at a time
    (about 90 KB each); pairs come sorted by their smaller id, so the pairs of one image
    run one after another and, ids following the indexing order of the folders, most of
    its partners are near it.
    """

    def __init__(
        self, rows: Mapping[int, ImageRow], reranker: Reranker | None = None, keep: int = KEPT
    ) -> None:
        self.rows = rows
        self.reranker = reranker or Reranker(VERIFY_OPTIONS)
        self.keep = keep
        self._roles: dict[int, tuple[bool, bool]] = {}
        self._prepared: OrderedDict[int, Prepared | None] = OrderedDict()
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def prepared(self, image_id: int) -> Prepared | None:
        """The features of an image (computed once while kept); None: unreadable."""
        while True:
            with self._lock:
                if image_id in self._prepared:
                    self._prepared.move_to_end(image_id)
                    return self._prepared[image_id]
                busy = self._pending.get(image_id)
                if busy is None:
                    self._pending[image_id] = threading.Event()
                    break
            busy.wait()  # another thread is computing them
        found = None
        try:
            found = self._compute(image_id)
            with self._lock:
                self._prepared[image_id] = found
                while len(self._prepared) > self.keep:
                    self._prepared.popitem(last=False)
        finally:
            with self._lock:
                self._pending.pop(image_id).set()
        return found

    def _compute(self, image_id: int) -> Prepared | None:
        path = self.rows[image_id]["path"]
        as_query, as_candidate = self._roles.get(image_id, (True, True))
        o = self.reranker.options
        try:
            image = load_image(path, min_side=max(o.side, o.candidate_side) // 2).image
        except UnreadableImage as e:
            log.debug("not verifying %s: %s", path, e.reason)
            return None
        return Prepared(
            self.reranker.query_features(image) if as_query else None,
            self.reranker.candidate_of(image) if as_candidate else None,
            colour_of(image),
        )

    def inliers(self, pair: Pair) -> Verdict:
        """Verifies the smaller image (as the query) against the larger one."""
        a, b = _ordered(pair, self.rows)
        small, large = self.rows[a], self.rows[b]
        if small["hash"] == large["hash"]:
            return Verdict(SAME_FILE, "identical")
        features = self._features(a, b)
        if features is None:
            return Verdict(0, "")
        seen = self.reranker.verify_candidate(*features)
        return Verdict(seen.inliers, self._kind(a, b, seen))

    def _kind(self, a: int, b: int, seen: Verification) -> str:
        """match_kind of a verified pair (smaller ``a``); "edited" if its colours changed."""
        options = self.reranker.options
        kind = match_kind(self.rows[a], self.rows[b], seen, options)
        if kind != "edited" and seen.inliers >= options.min_inliers:
            small, large = self.prepared(a), self.prepared(b)
            mine = None if small is None else small.colour
            theirs = None if large is None else large.colour
            if colours_changed(self.rows[a], self.rows[b], seen, mine, theirs, options):
                return "edited"
        return kind

    def _features(self, a: int, b: int) -> tuple[QueryFeatures, Candidate] | None:
        """The features of ``a`` as the query and ``b`` as the candidate; None when
        either image is unreadable."""
        query, found = self.prepared(a), self.prepared(b)
        if query is None or found is None or query.query is None or found.candidate is None:
            return None
        return query.query, found.candidate

    def verify(self, pairs: Iterable[Pair], crops: bool = False) -> dict[Pair, Verdict]:
        """The verdicts of ``pairs`` (see ``inliers``; with ``crops``, the smaller image
        only searched for as a crop of the larger one: _crop_run), on the reranker's
        threads."""
        items = sorted(pairs)
        for pair in items:
            a, b = _ordered(pair, self.rows)
            self._add_role(a, query=True)
            self._add_role(b, candidate=True)
        if crops:  # the pairs of one small image together (see _crop_run)
            by_image: dict[int, list[Pair]] = {}
            for pair in items:
                by_image.setdefault(_ordered(pair, self.rows)[0], []).append(pair)
            runs = list(by_image.values())
            items = [p for run in runs for p in run]
        else:  # at most RUN, and at least 4 runs a thread while there are enough pairs
            size = max(1, min(RUN, len(items) // (4 * self.reranker.workers)))
            runs = [items[i : i + size] for i in range(0, len(items), size)]
        work = self._crop_run if crops else self._run
        verdicts = [v for run in self.reranker.map(work, runs) for v in run]
        return dict(zip(items, verdicts, strict=True))

    def _add_role(self, image_id: int, query: bool = False, candidate: bool = False) -> None:
        """Records a role an image plays; features kept without it are computed anew (an
        image first verified as the smaller of its pairs only, then as the larger one of a
        deeper pair)."""
        was = self._roles.get(image_id, (False, False))
        now = (was[0] or query, was[1] or candidate)
        if now == was:
            return
        self._roles[image_id] = now
        with self._lock:
            kept = self._prepared.get(image_id)
            if kept is not None and (
                (now[0] and kept.query is None) or (now[1] and kept.candidate is None)
            ):
                del self._prepared[image_id]

    def _run(self, pairs: list[Pair]) -> list[Verdict]:
        return [self.inliers(p) for p in pairs]

    def _crop_run(self, pairs: list[Pair]) -> list[Verdict]:
        """The pairs of one small image searched as crops: only the places that
        correlate within CROP_MARGIN of its best count (a thumbnail is cut from one
        picture; a blank or uniform one correlates highly with the parts of many)."""
        found = [self._crop(p) for p in pairs]
        best = max((seen.correlation for seen, _ in found), default=0.0)
        return [
            verdict if seen.correlation >= best - CROP_MARGIN else Verdict(0, "")
            for seen, verdict in found
        ]

    def _crop(self, pair: Pair) -> tuple[Verification, Verdict]:
        a, b = _ordered(pair, self.rows)
        features = self._features(a, b)
        if features is None:
            return Verification(0, False, 1.0), Verdict(0, "")
        seen = self.reranker.verify_crop(*features)
        return seen, Verdict(seen.inliers, self._kind(a, b, seen))

    def close(self) -> None:
        self.reranker.close()


def keep_order(row: ImageRow, quality: float = 0.0) -> tuple:
    """Sort key, best to keep first: most pixels, least compressed (``quality``, see
    encoding_quality), most bytes per pixel, original format."""
    suffix = Path(row["path"]).suffix.lower()
    per_pixel = row["size"] / max(1, _area(row))
    return (-_area(row), -round(quality), -per_pixel, FORMAT_RANK.get(suffix, 3), row["id"])


# The IJG (libjpeg) luminance quantisation table of quality 50, which a JPEG's own table
# is a scaled copy of (quality q: scale 5000 / q below 50, 200 - 2q from 50).
IJG_LUMINANCE = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55]
    + [14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62]
    + [18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92]
    + [49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=float,
)
LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}


def encoding_quality(path: str) -> float:
    """How little a file's pixels were compressed, 0-100: 100 for a lossless format, a
    JPEG's quality as libjpeg's scale reads it from its luminance table (the header
    alone), 0 when it cannot be told (another format, a file that is gone). A copy
    saved again at a lower quality than its original ranks after it (bench copies:
    JPEG 30-70, three of them with more bytes per pixel than their original)."""
    suffix = Path(path).suffix.lower()
    if suffix in LOSSLESS:
        return 100.0
    table = luminance_table(path)
    if table is None:
        return 0.0
    scale = 100.0 * float(np.sum(table)) / float(IJG_LUMINANCE.sum())
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(np.clip(quality, 1.0, 100.0))


def star_groups(
    verified: Iterable[Pair],
    rows: Mapping[int, ImageRow],
    kept: Collection[int] = (),
    inside: Collection[int] = (),
    quality: Mapping[int, float] | None = None,
) -> list[list[int]]:
    """Groups around their best image: each member verified against that image. Images
    a person marked to keep (``kept``) come first, then those that show all of their
    picture (not in ``inside``: images that show part of another, enlarged), then by
    ``keep_order`` (with ``quality``: each image's encoding_quality, 0 when not given)."""
    linked = _links(verified)
    quality = quality or {}

    def order(i: int) -> tuple:
        return keep_order(rows[i], quality.get(i, 0.0))

    taken: set[int] = set()
    groups = []
    for best in sorted(linked, key=lambda i: (i not in kept, i in inside, order(i))):
        if best in taken:
            continue
        members = sorted((i for i in linked[best] if i not in taken), key=order)
        if members:
            groups.append([best, *members])
            taken.update(groups[-1])
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def match_kind(small: ImageRow, large: ImageRow, found: Verification, options) -> str:
    """How the smaller image of a verified pair relates to the larger one: "edited"
    (mirrored, turned, or its pixels changed), "cropped" (the smaller shows part of the
    larger), ENLARGED (the larger shows part of the smaller, enlarged: shown as
    "cropped"), "re-encoded" (the same pixel size) or "resized"."""
    if found.transform is None:
        return "re-encoded" if _area(small) == _area(large) else "resized"
    a = found.transform[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    angle = float(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    if found.mirrored or abs(angle) > MAX_TURN or found.agreement < UNCHANGED:
        return "edited"
    # the small image's feature frame (longer side options.side) in the large one's
    fw, fh = _fit_side(small, options.side)
    cw, ch = _fit_side(large, options.candidate_side)
    covers = (fw * scale) * (fh * scale) / (cw * ch)  # the small one's frame, in the large
    if covers < CROPPED:
        return "cropped"
    if covers * CROPPED > 1.0:
        return ENLARGED
    return "re-encoded" if _area(small) == _area(large) else "resized"


def _fit_side(row: ImageRow, side: int) -> tuple[float, float]:
    scale = side / max(row["width"], row["height"])
    return row["width"] * scale, row["height"] * scale


def describe(
    groups: list[list[int]],
    rows: Mapping[int, ImageRow],
    verdicts: Mapping[Pair, Verdict],
    cosine: Callable[[list[int]], np.ndarray],
) -> list[CopyGroup]:
    out = []
    for ids in groups:
        scores = cosine(ids)
        members = []
        for i, s in zip(ids, scores.tolist(), strict=True):
            row = rows[i]
            found = verdicts.get((min(i, ids[0]), max(i, ids[0])), Verdict(0, "best"))
            members.append(
                CopyMember(
                    i,
                    row["path"],
                    1.0 if i == ids[0] else float(min(s, 1.0)),
                    "cropped" if found.kind == ENLARGED else found.kind,
                    0 if found.inliers == SAME_FILE else found.inliers,
                    row["width"],
                    row["height"],
                    row["size"],
                )
            )
        out.append(CopyGroup(members))
    return out


def _area(row: ImageRow) -> int:
    return int(row["width"]) * int(row["height"])


class CopyPass(NamedTuple):
    """What a duplicates pass found, and what it cost."""

    groups: list[CopyGroup]
    candidates: int  # candidate pairs proposed (vectors, hashes, copy descriptors)
    verified: int  # of those, verified in this pass (most others: stored verdicts)
    skipped: int = 0  # deeper pairs of small images whose original was found: not verified


def find_copy_groups(
    index: VectorIndex,
    catalog: Catalog,
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    neighbours: int = CANDIDATES,
    extra: Iterable[Pair] = (),
    verifier: Callable[[Mapping[int, ImageRow]], PairVerifier] = PairVerifier,
    hashes: bool = True,
) -> CopyPass:
    """Verified duplicate groups of the images in ``index``, largest first.

    Candidates: the vectors' kNN, ``extra`` (the copy descriptors' pairs) and, with
    ``hashes``, each image's nearest perceptual hashes (lookalike.search.image_hash),
    verified first; then a small image's deeper vector neighbours (small_image_pairs),
    those worth it (see _deeper); then the pairs of a thumbnail that verified with no
    larger image, searched as crops (see _crops), and again deeper pairs and crops until
    no new pair verifies.

    ``catalog`` must be writable: new verdicts are stored there for the next pass.
    """
    rows = catalog.images(index.ids().tolist())
    for i in hidden_ids(catalog):
        rows.pop(i, None)
    first, deep = staged_candidates(index, rows, threshold, neighbours, extra, hashes, catalog)
    if catalog.get_meta(VERIFIER_KEY) != VERIFIER:  # found by an older verifier
        forget_verdicts(catalog)
    known = {p: Verdict(*v) for p, v in known_verdicts(catalog, rows).items()}
    enough = VERIFY_OPTIONS.min_inliers
    check = verifier(rows)
    try:
        todo = [p for p in first if p not in known]
        found = check.verify(todo)
        verdicts = {p: known.get(p) or found[p] for p in first}
        verdicts |= {p: known[p] for p in deep if p in known}
        # Deeper pairs, then thumbnails searched as crops, until no new link: a link
        # found makes more deeper pairs worth verifying (see _deeper).
        fresh: list[Pair] = todo
        searched: set[Pair] = set()
        while True:
            deeper = _deeper([p for p in deep if p not in verdicts], verdicts, rows, enough)
            more = check.verify(deeper)
            verdicts |= more
            crops = [
                p for p in _crops([*fresh, *deeper], verdicts, rows, enough) if p not in searched
            ]
            searched.update(crops)
            copies = {
                p: v for p, v in check.verify(crops, crops=True).items() if v.inliers >= enough
            }
            verdicts |= copies
            found |= more | copies
            if not copies and all(v.inliers < enough for v in more.values()):
                break
            fresh = [*deeper, *copies]
    finally:
        check.close()
    write_verdicts(catalog, found, rows)
    with catalog.transaction() as conn:
        catalog.set_meta(VERIFIER_KEY, VERIFIER, conn)
    verified = _verified(verdicts, enough)
    linked = {i for pair in verified for i in pair}  # the files of groups: their quality
    quality = {i: encoding_quality(rows[i]["path"]) for i in linked}
    groups = star_groups(
        verified, rows, kept_ids(catalog), _enlarged(verified, verdicts, rows), quality
    )
    skipped = sum(p not in verdicts for p in deep)
    described = describe(groups, rows, verdicts, _cosine(index))
    return CopyPass(described, len(first) + len(deep), len(found), skipped)


def _deeper(
    deep: Iterable[Pair],
    verdicts: Mapping[Pair, Verdict],
    rows: Mapping[int, ImageRow],
    enough: int,
) -> list[Pair]:
    """The deeper candidates worth verifying: those of a small image that has not yet
    verified against a larger one (its original), and those with an image its partners
    verified with (the rest of its group, whose best image it must verify with).

    On the bench (scripts/bench_duplicates.py, seeds 0 / 1) this leaves 11.0k / 10.9k of
    51.6k / 51.8k pairs unverified, and the same groups as verifying them all.
    """
    verified = _verified(verdicts, enough)
    linked = _links(verified)
    found_original = _found_original(verified, rows)
    out = []
    for pair in deep:
        small, large = _ordered(pair, rows)
        partners = linked.get(small, set())
        if small not in found_original or any(large in linked[n] for n in partners):
            out.append(pair)
    return out


def _crops(
    pairs: Iterable[Pair],
    verdicts: Mapping[Pair, Verdict],
    rows: Mapping[int, ImageRow],
    enough: int,
) -> list[Pair]:
    """The pairs of ``pairs`` to search as crops (Reranker.verify_crop): those that did
    not verify, of a small image (a thumbnail: ``small_query`` pixels or fewer on its
    longer side) that verified against no larger image, a thumbnail cut from part of a
    photo."""
    found_original = _found_original(_verified(verdicts, enough), rows)
    side = VERIFY_OPTIONS.small_query
    out = []
    for pair in pairs:
        small, _ = _ordered(pair, rows)
        row = rows[small]
        if verdicts[pair].inliers < enough and small not in found_original:
            if max(int(row["width"]), int(row["height"])) <= side:
                out.append(pair)
    return out


def _verified(verdicts: Mapping[Pair, Verdict], enough: int) -> list[Pair]:
    """The pairs whose verdict has ``enough`` inliers: verified copies."""
    return [p for p, v in verdicts.items() if v.inliers >= enough]


def _enlarged(
    verified: Iterable[Pair], verdicts: Mapping[Pair, Verdict], rows: Mapping[int, ImageRow]
) -> set[int]:
    """The images that show part of another image they verified with, enlarged."""
    return {_ordered(p, rows)[1] for p in verified if verdicts[p].kind == ENLARGED}


def _found_original(verified: Iterable[Pair], rows: Mapping[int, ImageRow]) -> set[int]:
    """The images that verified as the smaller of a pair: their original is found."""
    return {_ordered(p, rows)[0] for p in verified}


def _links(pairs: Iterable[Pair]) -> dict[int, set[int]]:
    """Each image of ``pairs`` and the images it is paired with."""
    linked: dict[int, set[int]] = {}
    for a, b in pairs:
        linked.setdefault(a, set()).add(b)
        linked.setdefault(b, set()).add(a)
    return linked


def _ordered(pair: Pair, rows: Mapping[int, ImageRow]) -> tuple[int, int]:
    """(smaller, larger) by pixels: the smaller image is verified as the query."""
    a, b = sorted(pair, key=lambda i: _area(rows[i]))
    return a, b


def _cosine(index: VectorIndex) -> Callable[[list[int]], np.ndarray]:
    def scores(ids: list[int]) -> np.ndarray:
        vectors = index.reconstruct(np.array(ids, dtype=np.int64))
        return vectors @ vectors[0]

    return scores


def copy_pairs(
    catalog: Catalog, index: CopyIndex, neighbours: int = COPY_NEIGHBOURS
) -> Iterator[Pair]:
    """Candidate pairs from the copy descriptors: each image's nearest few, above
    COPY_MIN_SCORE (the copy model finds crops and rotations the CNN vector misses)."""
    seq = 0
    while True:
        seq, ids, rows = catalog.copy_vectors_since(seq, COPY_CHUNK)
        if not len(ids):
            return
        scores, found = index.search(rows.astype(np.float32), neighbours + 1)
        keep = (found >= 0) & (found != ids[:, None]) & (scores >= COPY_MIN_SCORE)
        r, c = np.nonzero(keep)
        for a, b in zip(ids[r].tolist(), found[r, c].tolist(), strict=True):
            yield (min(a, b), max(a, b))
