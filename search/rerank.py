"""Second stage of query by image: geometric verification of local features.

The CNN vector finds candidates that look alike; it does not tell a copy of the
query's photo (cropped, resized, recompressed, rotated, mirrored, grayscale,
colour-shifted) from another photo of the same kind of thing. A copy shares many
local features in one consistent geometric arrangement, another photo does not.
For the first-stage candidates, ORB keypoints of the query and of each candidate
are matched (ratio test) and a similarity transform (rotation, scale, shift) is fit
with RANSAC; a candidate with at least ``min_inliers`` consistent matches is a
verified copy and moves to the front, most inliers first, the rest keeping their
first-stage order. ORB works on gray levels (so colour edits and grayscale copies
still match) and is rotation invariant but not mirror invariant, so the mirrored
query is matched as well. Candidates are scaled larger than the query and keep more
keypoints (``candidate_side``, ``candidate_features``): a cropped query shows part of the
candidate enlarged, and its detail has to be among the candidate's finer scales (of
crops keeping 10-40% of the area, 72% verified at the query's scale, 86% at 512 pixels).
When none of the first ``depth`` candidates verifies, the next are tried, up to ``deep``.

A small query (a thumbnail: at most ``small_query`` pixels on its longer side) has too
few pixels for ORB (its keypoints need a 31-pixel border and texture that upscaling does
not bring back), so it is also compared whole: both images in gray levels at the
query's size (at most ``thumb_side``), normalised cross-correlation, both orientations,
when their aspect ratios agree. A correlation of ``thumb_match`` or more counts as a
verified copy and ``thumb_sure`` as a sure one (on thumbnails of the dev images: copies
0.96-0.999, other photos below 0.8 except near-duplicates of the same scene). With
``crop_least`` (the duplicates pass), ``verify_crop`` also searches for a small query as
a part of a candidate: a thumbnail of a crop (search/crop_search.py).

Candidate images are read from disk at query time (nothing extra is stored when
indexing), scaled down while decoding, and their features kept in a bounded cache,
so a long-lived searcher (the web app) reads each library image at most once. A
candidate that cannot be read is simply left unverified, and so is one whose shape ORB
cannot handle (a sliver of an image, 2x1200 pixels, or a 270:1 query: no keypoints).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
from PIL import Image, ImageFilter

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import load_image
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.search.crop_search import crop_search
from lookalike.search.pixels import Agreement, agreements, edge_agreements

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RerankOptions:
    depth: int = 30  # first-stage candidates verified per query, usually
    first: int = 4  # verified first; the rest only when none of these is a sure copy
    deep: int = 150  # when none of the first ``depth`` is a copy, verify on up to here
    sure_inliers: int = 60  # a sure copy has this many inliers and ...
    sure_fraction: float = 0.3  # ... at least this fraction of the query's keypoints
    side: int = 400  # the query is scaled so that its longer side is this many pixels
    features: int = 700  # ORB keypoints kept of the query (strongest first)
    # Candidates are scaled larger, with more keypoints: a cropped query shows a part of
    # the candidate enlarged, whose detail the candidate's finer scales must hold.
    candidate_side: int = 512
    candidate_features: int = 1000
    ratio: float = 0.8  # Lowe's ratio test: best match distance < ratio * second best
    reprojection: float = 0.01  # RANSAC inlier distance, as a fraction of candidate_side
    min_inliers: int = 15  # consistent matches that make a verified copy
    small_query: int = 100  # queries up to this longer side are also compared whole
    thumb_side: int = 48  # ... at most this many pixels on the longer side
    thumb_match: float = 0.95  # correlation of a whole-image match (a verified copy)
    thumb_sure: float = 0.99  # ... and of a sure one
    # Pixel agreement (search/pixels.py) below which a match is another photo of the same
    # scene, not a copy: of 892 verified edited copies of dev images 99% agree 0.925 or
    # more (the least, recoloured and turned, 0.86); different photos that verify (one
    # face before one wall, stop signs) 0.72-0.88, near-identical ones more.
    same_picture: float = 0.88
    # Which matches the pixel check applies to: mirrored ones only (where search marked
    # another photo of the same face as a copy; a strong hue shift of a crop agrees only
    # 0.74, so checking every match would unmark such copies), or all (duplicates).
    pixel_check_all: bool = False
    # The least agreement of a part of the overlap (search/pixels.py: agreements) below
    # which a match is another photo of the same scene; 0: not checked (search). See
    # lookalike.search.copy_groups.VERIFY_OPTIONS for the duplicates pass's measure.
    same_parts: float = 0.0
    # A match whose gray levels disagree but agree at least this much overall is still a
    # copy when its edges agree (search/pixels.py: edge_agreements, ``same_edges`` overall
    # and ``same_edge_parts`` in every part): a recoloured copy; 0: not checked (search).
    recoloured: float = 0.0
    # A match with fewer than ``min_inliers`` but at least this many inliers is a copy
    # when its pixels agree (it counts as ``min_inliers``): a small crop or a thumbnail
    # keeps few keypoints; 0: not checked (search: ``min_inliers`` is the bar).
    least_checked: int = 0
    same_edges: float = 0.75
    same_edge_parts: float = 0.5
    # The mirrored query's descriptors computed at the plain keypoints mirrored (see
    # ``extract_mirrored``) instead of detected anew: about 0.45x the cost of a second
    # detection; what the duplicates pass does, where every image is a query.
    mirror_keypoints: bool = False
    # Every other query descriptor is matched first, the rest only when at least this
    # many of those pass the ratio test (0: all at once, search). See
    # lookalike.search.copy_groups.VERIFY_OPTIONS for what the duplicates pass measured.
    half_first: int = 0
    # A small query (``small_query``) that matches a candidate neither by local features
    # nor whole can be a crop of it: ``verify_crop`` searches for it in the candidate's
    # thumbnail (search/crop_search.py) over the scales at which it covers from
    # ``crop_least`` of the candidate's side to all of it; a place that correlates
    # ``crop_match`` or more is a copy when its pixels agree as a local match's must.
    # 0: not searched (search; the duplicates pass searches, see copy_groups.py).
    crop_least: float = 0.0
    crop_match: float = 0.9
    cache_size: int = 2048  # candidates kept in memory (about 45 KB each)
    workers: int = 0  # verification threads; 0: up to 4, one per core


class LocalFeatures(NamedTuple):
    """ORB keypoints of one image: positions (n, 2) and binary descriptors (n, 32)."""

    points: np.ndarray
    descriptors: np.ndarray

    @property
    def size(self) -> int:
        return len(self.points)


EMPTY = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
THUMB_KEPT = 128  # longer side of the gray thumbnail kept per candidate (and query)
BOX = Image.Resampling.BOX


class Candidate(NamedTuple):
    """What verification keeps of a library image: its ORB features, and a small gray
    thumbnail (longer side THUMB_KEPT) with the image's aspect ratio (width / height)."""

    features: LocalFeatures
    thumb: Image.Image
    aspect: float


def gray_at_side(image: Image.Image, side: int) -> np.ndarray:
    """The image in gray levels, scaled (up or down) so its longer side is ``side``."""
    gray = image.convert("L")
    w, h = gray.size
    scale = side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != gray.size:
        gray = gray.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(gray)


# ORB's keypoints need a 31-pixel patch (and its pyramid a level above a pixel): a
# thinner image has none, and OpenCV raises on some (a 1x512 strip: inv_scale_x > 0).
MIN_ORB_SIDE = 32


def extract(gray: np.ndarray, features: int) -> LocalFeatures:
    """ORB keypoints and descriptors of a gray image; none for an image too thin for ORB."""
    found = _detected(gray, features)
    if found is None:
        return EMPTY
    _orb, keypoints, descriptors = found
    return LocalFeatures(_points(keypoints), descriptors)


def extract_mirrored(gray: np.ndarray, features: int) -> tuple[LocalFeatures, LocalFeatures]:
    """``extract`` of a gray image and of its mirror image, the mirror's descriptors
    computed at the image's keypoints mirrored (x to width - 1 - x, orientation to 180
    degrees minus it): ORB's detector and orientation are mirror symmetric, its
    descriptor pattern is not. Detection is about 2/3 of ORB's time at 320 pixels."""
    import cv2

    found = _detected(gray, features)
    if found is None:
        return EMPTY, EMPTY
    orb, keypoints, descriptors = found
    right = gray.shape[1] - 1
    turned = [
        cv2.KeyPoint(
            right - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave
        )
        for k in keypoints
    ]
    try:
        kept, flipped = orb.compute(np.ascontiguousarray(gray[:, ::-1]), turned)
    except cv2.error as e:  # a shape OpenCV cannot take: left unverified
        log.debug("no local features for a %s image: %s", gray.shape, e)
        return EMPTY, EMPTY
    plain = LocalFeatures(_points(keypoints), descriptors)
    if flipped is None or not kept:
        return plain, EMPTY
    return plain, LocalFeatures(_points(kept), flipped)


def _detected(gray: np.ndarray, features: int):
    """ORB (for more descriptors of the same settings), and the keypoints and descriptors
    it detects in a gray image; None for an image too thin for ORB, a shape OpenCV cannot
    take, or no keypoints."""
    import cv2  # heavy (OpenCV): only when a box is found or a copy verified

    if min(gray.shape[:2]) < MIN_ORB_SIDE:
        return None
    orb = cv2.ORB.create(nfeatures=features, fastThreshold=10)
    try:
        keypoints, descriptors = orb.detectAndCompute(np.ascontiguousarray(gray), None)
    except cv2.error as e:  # a shape OpenCV cannot take: left unverified
        log.debug("no local features for a %s image: %s", gray.shape, e)
        return None
    if descriptors is None or not keypoints:
        return None
    return orb, keypoints, descriptors


def _points(keypoints) -> np.ndarray:
    """The (n, 2) float32 positions of OpenCV keypoints, converted in C: a Python loop
    over 700 of them takes 0.12 ms, holding the GIL the verification threads share."""
    import cv2

    return np.asarray(cv2.KeyPoint.convert(keypoints), dtype=np.float32).reshape(-1, 2)


def hamming_two_nearest(queries: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each binary descriptor of ``queries``, its two nearest in ``base`` (Hamming):
    distances (n, 2) and indices (n, 2). FAISS's binary search, several times faster
    than OpenCV's brute-force matcher on ORB's 256-bit descriptors."""
    index = load_faiss().IndexBinaryFlat(base.shape[1] * 8)
    index.add(np.ascontiguousarray(base))
    distances, nearest = index.search(np.ascontiguousarray(queries), 2)
    return distances, nearest


def _half_first(
    queries: np.ndarray, base: np.ndarray, ratio: float, least: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``hamming_two_nearest`` of every other query first; None when fewer than ``least``
    of those pass the ratio test, else the two nearest of every query, in order."""
    distances, nearest = hamming_two_nearest(queries[::2], base)
    if np.count_nonzero(distances[:, 0] < ratio * distances[:, 1]) < least:
        return None
    rest = hamming_two_nearest(queries[1::2], base)
    all_distances = np.empty((len(queries), 2), dtype=distances.dtype)
    all_nearest = np.empty((len(queries), 2), dtype=nearest.dtype)
    all_distances[::2], all_nearest[::2] = distances, nearest
    all_distances[1::2], all_nearest[1::2] = rest
    return all_distances, all_nearest


class Match(NamedTuple):
    """The consistent matches of a query in a candidate, and the transform they fit."""

    inliers: int
    transform: np.ndarray | None  # 2x3: query feature pixels -> candidate feature pixels


NO_MATCH = Match(0, None)


def match_features(
    query: LocalFeatures,
    candidate: LocalFeatures,
    ratio: float = 0.8,
    reprojection: float = 4.0,
    least: int = 4,
    half_first: int = 0,
) -> Match:
    """Matches of ``query`` in ``candidate`` consistent with one similarity transform.

    Args:
        query, candidate: local features of two images at about the same scale.
        ratio: Lowe's ratio test threshold.
        reprojection: the RANSAC inlier distance in pixels.
        least: fewer matches surviving the ratio test than this (at least 4) are no
            match, without fitting (RANSAC cannot find more inliers than matches).
        half_first: when more than 0, every other query descriptor is matched first,
            and fewer than ``half_first`` of them surviving the ratio test is no match;
            otherwise the rest are matched and the result is that of matching all.

    Returns:
        The number of RANSAC inliers and the transform; no match when fewer than
        ``least`` matches survive the ratio test.
    """
    import cv2  # heavy (OpenCV): only when a box is found or a copy verified

    if query.size < 4 or candidate.size < 4:
        return NO_MATCH
    if half_first > 0:
        found = _half_first(query.descriptors, candidate.descriptors, ratio, half_first)
        if found is None:
            return NO_MATCH
        distances, nearest = found
    else:
        distances, nearest = hamming_two_nearest(query.descriptors, candidate.descriptors)
    good = np.flatnonzero(distances[:, 0] < ratio * distances[:, 1])
    if len(good) < max(4, least):
        return NO_MATCH
    src = query.points[good]
    dst = candidate.points[nearest[good, 0]]
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=reprojection, maxIters=1000
    )
    if mask is None or transform is None:
        return NO_MATCH
    return Match(int(mask.sum()), transform)


def count_inliers(
    query: LocalFeatures, candidate: LocalFeatures, ratio: float = 0.8, reprojection: float = 4.0
) -> int:
    """The inliers of ``match_features``."""
    return match_features(query, candidate, ratio, reprojection).inliers


class QueryFeatures(NamedTuple):
    """The query's features in both orientations (ORB is not mirror invariant), and for
    a small query its whole-image form (compared with each candidate's thumbnail)."""

    plain: LocalFeatures
    mirrored: LocalFeatures
    small: SmallQuery | None = None
    # gray levels at most THUMB_KEPT pixels on the longer side, for the pixel check
    pixels: np.ndarray | None = None


class Verification(NamedTuple):
    """What verifying a query against one candidate found."""

    inliers: int  # consistent local matches (what a whole-image match counts as, if more)
    mirrored: bool  # the matches were found with the query mirrored
    agreement: float  # pixel agreement once aligned (1.0: not checked; see search/pixels.py)
    transform: np.ndarray | None = None  # 2x3: query feature pixels -> candidate's
    correlation: float = 0.0  # of a place found by ``verify_crop`` (0: none searched)


class SmallQuery(NamedTuple):
    """A small query prepared once for whole-image comparison: gray levels at most
    ``thumb_side`` pixels on the longer side, blurred, zero mean, unit norm; and the
    query's aspect ratio (width / height)."""

    pixels: np.ndarray
    aspect: float


def small_query(image: Image.Image, side: int) -> SmallQuery:
    w, h = image.size
    scale = min(1.0, side / max(w, h))
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    return SmallQuery(_zero_mean_unit(image.convert("L").resize(size, Image.Resampling.BOX)), w / h)


def thumb_correlation(query: SmallQuery, thumb: Image.Image, aspect: float) -> float:
    """Normalised cross-correlation of a small query with a candidate's thumbnail scaled
    to the query's size, the better of the two orientations; -1 when the aspect ratios
    differ by more than 3%."""
    if abs(np.log(aspect / query.aspect)) > 0.03:
        return -1.0
    h, w = query.pixels.shape
    b = thumb.resize((w, h), Image.Resampling.BOX)
    return max(
        float((query.pixels * _zero_mean_unit(b)).sum()),
        float((query.pixels * _zero_mean_unit(b.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).sum()),
    )


def _zero_mean_unit(gray: Image.Image) -> np.ndarray:
    a = np.asarray(gray.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32)
    a = a - a.mean()
    return a / max(float(np.linalg.norm(a)), 1e-6)


class Reranker:
    """Verifies first-stage candidates against a query image (see module docstring)."""

    def __init__(
        self,
        options: RerankOptions | None = None,
        load: Callable[[str, int], Image.Image] | None = None,
    ) -> None:
        """
        Args:
            options: the settings (defaults: RerankOptions()).
            load: reads a candidate image given its path and the shorter side needed;
                by default ``lookalike.indexer.images.load_image`` (JPEG draft decoding).
        """
        self.options = options or RerankOptions()
        self._load = load or _load_for_features
        self._cache: OrderedDict[str, Candidate] = OrderedDict()
        self._lock = threading.Lock()
        workers = self.options.workers or min(4, os.cpu_count() or 1)
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None

    def query_features(self, image: Image.Image) -> QueryFeatures:
        gray = gray_at_side(image, self.options.side)
        o = self.options
        if o.mirror_keypoints:
            plain, mirrored = extract_mirrored(gray, o.features)
        else:
            plain = extract(gray, o.features)
            mirrored = extract(np.ascontiguousarray(gray[:, ::-1]), o.features)
        small = small_query(image, o.thumb_side) if max(image.size) <= o.small_query else None
        pixels = np.asarray(Image.fromarray(gray).resize(_fit(image.size, THUMB_KEPT), BOX))
        return QueryFeatures(plain, mirrored, small, pixels)

    def candidate_features(self, path: str) -> Candidate | None:
        """What is verified of a library image (cached); None when it cannot be read now."""
        with self._lock:
            found = self._cache.get(path)
            if found is not None:
                self._cache.move_to_end(path)
                return found
        try:
            image = self._load(path, self.options.candidate_side // 2)
        except UnreadableImage as e:
            log.debug("not verifying %s: %s", path, e.reason)
            return None
        features = self.candidate_of(image)
        with self._lock:
            self._cache[path] = features
            while len(self._cache) > self.options.cache_size:
                self._cache.popitem(last=False)
        return features

    def candidate_of(self, image: Image.Image) -> Candidate:
        """What is verified of an image already decoded (not cached)."""
        gray = gray_at_side(image, self.options.candidate_side)
        thumb = Image.fromarray(gray).resize(_fit(image.size, THUMB_KEPT), Image.Resampling.BOX)
        features = extract(gray, self.options.candidate_features)
        return Candidate(features, thumb, image.size[0] / image.size[1])

    def inliers(self, query: QueryFeatures, path: str) -> int | None:
        """The inliers of ``verify``; None: unreadable."""
        found = self.verify(query, path)
        return None if found is None else found.inliers

    def verify(self, query: QueryFeatures, path: str) -> Verification | None:
        """The more consistent of the plain and mirrored matches, or for a small query
        what its whole-image correlation counts as, if more; None: unreadable.

        A match of ``min_inliers`` or more whose pixels disagree once aligned (below
        ``same_picture``, see search/pixels.py; or in one part below ``same_parts``) is
        another photo of the same scene, not a copy: it counts as ``min_inliers - 1``
        (mirrored matches only, unless ``pixel_check_all``), unless the match in the
        other orientation is checked and agrees (a mirrored copy of a symmetric subject
        can match plain, with many inliers) or, with ``recoloured``, its edges agree.
        """
        found = self.candidate_features(path)
        return None if found is None else self.verify_candidate(query, found)

    def verify_candidate(self, query: QueryFeatures, found: Candidate) -> Verification:
        """``verify`` against a candidate's features (see ``candidate_of``)."""
        o = self.options
        candidate = found.features
        ratio, px = o.ratio, o.reprojection * o.candidate_side
        # Fewer matches than a verified copy has inliers are left unfitted: no copy.
        enough = min(o.min_inliers, o.least_checked or o.min_inliers)
        half = o.half_first
        tried = [(match_features(query.plain, candidate, ratio, px, enough, half), False)]
        if tried[0][0].inliers < 4 * o.min_inliers:  # not clearly a copy in this orientation
            tried.append((match_features(query.mirrored, candidate, ratio, px, enough, half), True))
        tried.sort(key=lambda t: -t[0].inliers)  # stable: plain first on a tie
        best, mirrored = tried[0]
        result = Verification(best.inliers, mirrored, 1.0, best.transform)
        for n, (match, flip) in enumerate(tried):
            if match.inliers < enough:
                break
            few = match.inliers < o.min_inliers  # a copy only if its pixels agree
            agree = self._agreement(query, found, match, flip)
            if few and agree is None:
                break
            if agree is None:  # not checked, or nothing to compare: taken as it is, unless
                if n == 0:  # a better match in the other orientation was another photo
                    result = Verification(match.inliers, flip, 1.0, match.transform)
                break
            if self._same_picture(query, found, match, flip, agree):
                inliers = max(match.inliers, o.min_inliers)
                result = Verification(inliers, flip, agree[0], match.transform)
                break
            if few:
                break
            if n == 0:  # another photo of the scene, unless the other orientation is a copy
                result = Verification(o.min_inliers - 1, flip, agree[0], match.transform)
            if len(tried) == 1:  # a clear match in the plain orientation that disagrees
                mirrored_match = match_features(query.mirrored, candidate, ratio, px, enough, half)
                tried.append((mirrored_match, True))
        if query.small is not None:
            whole = self._whole_image(query, found)
            if whole > result.inliers:
                result = result._replace(inliers=whole)
        return result

    def _agreement(
        self, query: QueryFeatures, found: Candidate, match: Match, mirrored: bool, edges=False
    ) -> tuple[float, float] | None:
        """The pixel agreement of a match (whole overlap, least part; of the edges with
        ``edges``), or None when the options do not check it or it cannot be checked."""
        o = self.options
        if not (mirrored or o.pixel_check_all):
            return None
        if query.pixels is None or match.transform is None:
            return None
        return self._pixels(query.pixels, found, match.transform, mirrored, edges)

    def _pixels(
        self, pixels: np.ndarray, found: Candidate, transform, mirrored: bool, edges=False
    ) -> Agreement:
        """The agreement (search/pixels.py) of the query's gray ``pixels``, mirrored first
        when ``mirrored``, with the candidate's thumbnail under ``transform`` (query
        feature pixels -> candidate's)."""
        o = self.options
        pixels = pixels[:, ::-1] if mirrored else pixels
        return (edge_agreements if edges else agreements)(
            pixels,
            max(pixels.shape) / o.side,
            np.asarray(found.thumb),
            max(found.thumb.size) / o.candidate_side,
            transform,
        )

    def _same_picture(
        self, query: QueryFeatures, found: Candidate, match: Match, mirrored: bool, agree
    ) -> bool:
        """Whether a match whose pixels agree by ``agree`` (whole overlap, least part) is
        the same picture: in every part, or a recoloured copy."""
        o = self.options
        whole, least = agree
        if whole >= o.same_picture and least >= o.same_parts:
            return True
        return self._recoloured(query, found, match, mirrored, whole)

    def _recoloured(
        self, query: QueryFeatures, found: Candidate, match: Match, mirrored: bool, gray: float
    ) -> bool:
        """Whether a match whose gray levels disagree is a recoloured copy (see
        ``RerankOptions.recoloured``)."""
        o = self.options
        if not o.recoloured or gray < o.recoloured:
            return False
        edges = self._agreement(query, found, match, mirrored, edges=True)
        return edges is not None and edges[0] >= o.same_edges and edges[1] >= o.same_edge_parts

    def verify_crop(self, query: QueryFeatures, found: Candidate) -> Verification:
        """A small query searched for as a part of a candidate (``crop_least``): the
        best place found, a copy (``min_inliers`` up to a sure copy's count, as the
        correlation goes from ``crop_match`` to ``thumb_sure``) when its pixels agree;
        0 inliers otherwise, or when the query is not small or the options do not
        search."""
        o = self.options
        none = Verification(0, False, 1.0)
        if not o.crop_least or query.small is None or query.pixels is None:
            return none
        thumb = np.asarray(found.thumb)
        place = crop_search(query.pixels, thumb, o.crop_least)
        if place is None:
            return none
        if place.correlation < o.crop_match:
            return none._replace(correlation=place.correlation)
        # to feature pixels: the query's at ``side``, the candidate's at ``candidate_side``
        query_scale = max(query.pixels.shape) / o.side
        candidate_scale = max(thumb.shape) / o.candidate_side
        transform = place.transform.copy()
        transform[:, :2] *= query_scale / candidate_scale
        transform[:, 2] /= candidate_scale
        agree = self._pixels(query.pixels, found, transform, place.mirrored)
        match = Match(o.min_inliers, transform)
        if not self._same_picture(query, found, match, place.mirrored, agree):
            return Verification(0, place.mirrored, agree.whole, transform, place.correlation)
        inliers = self._as_inliers(query, place.correlation, o.crop_match)
        return Verification(inliers, place.mirrored, agree.whole, transform, place.correlation)

    def _whole_image(self, query: QueryFeatures, found: Candidate) -> int:
        """What a small query's whole-image correlation counts as (0: no match)."""
        o = self.options
        assert query.small is not None
        r = thumb_correlation(query.small, found.thumb, found.aspect)
        if r < o.thumb_match:
            return 0
        return self._as_inliers(query, r, o.thumb_match)

    def _as_inliers(self, query: QueryFeatures, r: float, low: float) -> int:
        """What a correlation ``r`` of ``low`` or more counts as: ``low`` as min_inliers,
        thumb_sure (or more) as a sure copy's count, linearly in between."""
        o = self.options
        t = min(1.0, (r - low) / (o.thumb_sure - low))
        bar = self._sure_bar(query)
        return int(np.ceil(o.min_inliers + t * (bar - o.min_inliers)))

    def rerank(
        self,
        image: Image.Image,
        results: Sequence[T],
        path: Callable[[T], str],
        deep: int | None = None,
    ) -> list[tuple[T, int | None]]:
        """The first ``deep`` results reordered (verified copies first), then the rest.

        The first ``first`` candidates are verified; the others up to ``depth`` only when
        none of those is a sure copy (see ``_sure``), which saves most of the work for a
        query whose original the first stage already ranks near the top. When none of
        the first ``depth`` is a verified copy at all, the next candidates are verified
        too, ``depth`` at a time, up to ``deep`` or a sure copy: a heavily edited copy
        (a small crop, a thumbnail, recompressed) is often ranked below 30 by its vector
        yet verifies clearly. A query with no copy in the library pays for that search.

        Args:
            image: the query image (the region searched with, when a box was given).
            results: first-stage results, best first.
            path: the file path of a result.
            deep: verify up to this many (default: ``options.deep``).

        Returns:
            (result, inliers) pairs in the new order; inliers is None for results that
            were not verified (not reached, or unreadable). For a small query, a
            whole-image match counts as the inliers it stands for (see ``inliers``).
        """
        depth, enough = self.options.depth, self.options.min_inliers
        head = list(results[: max(depth, self.options.deep if deep is None else deep)])
        if not head:
            return [(r, None) for r in results]
        query = self.query_features(image)
        counts: list[int | None] = self.map(
            lambda r: self.inliers(query, path(r)), head[: self.options.first]
        )
        end = depth
        while not self._sure(counts, query) and len(counts) < len(head):
            if len(counts) >= depth and any((n or 0) >= enough for n in counts):
                break  # a verified copy among the first ``depth``: no deeper search
            more = head[len(counts) : end]
            counts += self.map(lambda r: self.inliers(query, path(r)), more)
            end += depth
        counts += [None] * (len(head) - len(counts))
        verified = sorted(
            (i for i, n in enumerate(counts) if (n or 0) >= enough), key=lambda i: -(counts[i] or 0)
        )
        others = [i for i, n in enumerate(counts) if (n or 0) < enough]
        ranked = [(head[i], counts[i]) for i in verified + others]
        return ranked + [(r, None) for r in results[len(head) :]]

    def _sure(self, counts: list[int | None], query: QueryFeatures) -> bool:
        """True when a candidate is so clearly a copy that no other needs checking.

        Most copies match a third or more of the query's keypoints; a different photo of
        the same scene rarely does (on copies of the dev images: under 0.2% of the
        candidates that were not the original).
        """
        bar = self._sure_bar(query)
        return any((n or 0) >= bar for n in counts)

    def _sure_bar(self, query: QueryFeatures) -> float:
        return max(self.options.sure_inliers, self.options.sure_fraction * query.plain.size)

    def clear(self) -> None:
        """Forget the cached candidate features."""
        with self._lock:
            self._cache.clear()

    @property
    def workers(self) -> int:
        """The verification threads ``map`` runs on."""
        return self._workers

    def map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        """``fn`` over ``items`` on the verification threads, in order."""
        if self._workers == 1 or len(items) == 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._workers, thread_name_prefix="verify", initializer=_one_faiss_thread
                )
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so that its longer side is ``side`` (at least one pixel each)."""
    w, h = size
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _load_for_features(path: str, min_side: int) -> Image.Image:
    return load_image(path, min_side=min_side).image


def _one_faiss_thread() -> None:
    """The verification threads already share the cores: no OpenMP team inside each, and
    no OpenCV thread pool (a process-wide setting; on the duplicates bench, seed 0, the
    pass took 23.1 CPU ms an image with it, 23.9-25.0 without)."""
    load_faiss().omp_set_num_threads(1)
    import cv2  # heavy (OpenCV): loaded with the first verification anyway

    cv2.setNumThreads(1)
