"""Pixel agreement: are two images that verified geometrically the same picture?

Local features prove that two images share a rigid arrangement of keypoints; a
different photo of the same scene (the same person before the same wall, a mirrored
portrait of the same face) can share one too. Once the transform is known, the query
is warped onto the candidate and their gray levels compared where they overlap:
a copy agrees pixel for pixel (normalised cross-correlation of the blurred gray
images, robust to recompression, gray levels and colour shifts); another photo of the
same scene disagrees wherever the subject moved.

Both images are compared small (their longer side ``THUMB_KEPT`` of rerank.py, 128 px),
so the check costs a fraction of a millisecond.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Overlapping pixels (at the thumbnails' scale) below which nothing is decided.
MIN_OVERLAP = 150
DARK = 8  # gray levels at or below this in the query are fill, left out of the overlap
FLAT = 2.0  # gray-level spread below which an overlap is blank
BLUR = 1.0  # Gaussian sigma in thumbnail pixels, against JPEG blocks and resampling
CELLS = 4  # the overlap's parts compared one by one: CELLS x CELLS
CELL_PIXELS = 30  # overlapping pixels a part needs to count
CELL_FLAT = 4.0  # gray-level spread below which a part is blank (sky, a wall): left out


def agreement(
    query: np.ndarray, query_scale: float, candidate: np.ndarray, candidate_scale: float, transform
) -> float:
    """Correlation of ``query`` warped onto ``candidate`` over their overlap.

    Args:
        query, candidate: gray images (uint8), small versions of the images that the
            local features were found on.
        query_scale, candidate_scale: their size over the size the features were found at.
        transform: the 2x3 affine map from the query's feature pixels to the candidate's.

    Returns:
        The normalised cross-correlation in [-1, 1]; 0.0 when the overlap is too small
        (a degenerate transform) or blank to tell: not the same picture.
    """
    return agreements(query, query_scale, candidate, candidate_scale, transform).whole


class Agreement(NamedTuple):
    whole: float  # the correlation over the whole overlap (see ``agreement``)
    # the least correlation of the cells of a CELLS x CELLS grid over the overlap's
    # bounding box (cells with texture only; ``whole`` when none has)
    least_cell: float


def agreements(
    query: np.ndarray, query_scale: float, candidate: np.ndarray, candidate_scale: float, transform
) -> Agreement:
    """``agreement``, and the least agreement of a part of the overlap: another photo of
    the same scene taken a moment later (a person before the same wall) agrees over the
    still background, so the whole correlates highly, but not where the subject moved.
    A copy agrees in every part."""
    return _compared(query, query_scale, candidate, candidate_scale, transform, edges=False)


def edge_agreements(
    query: np.ndarray, query_scale: float, candidate: np.ndarray, candidate_scale: float, transform
) -> Agreement:
    """``agreements`` of the images' edges (gradient magnitudes) instead of their gray
    levels. A recoloured copy changes gray levels region by region (a hue shift turns
    red darker and green lighter, then grayscale keeps that), so its gray levels agree
    less (0.75-0.89 on the bench's colour edits); its edges stay where they were. Where
    the subject of another photo of the scene moved, its edges moved too."""
    return _compared(query, query_scale, candidate, candidate_scale, transform, edges=True)


def _compared(
    query: np.ndarray,
    query_scale: float,
    candidate: np.ndarray,
    candidate_scale: float,
    transform,
    edges: bool,
) -> Agreement:
    import cv2  # heavy (OpenCV): only when a copy is verified

    m = np.asarray(transform, dtype=np.float64).copy()
    m[:, :2] *= candidate_scale / query_scale
    m[:, 2] *= candidate_scale
    h, w = candidate.shape
    q = cv2.GaussianBlur(query.astype(np.float32), (0, 0), BLUR)
    c = cv2.GaussianBlur(candidate.astype(np.float32), (0, 0), BLUR)
    if edges:  # a turn keeps gradient magnitudes, a scale multiplies them all alike
        q, c = _edges(q), _edges(c)
    warped = cv2.warpAffine(q, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    # Black fill (the corners of a rotated copy, letterbox bars) is no picture content.
    content = cv2.erode((query > DARK).astype(np.float32), np.ones((5, 5), np.uint8))
    inside = cv2.warpAffine(content, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    # edges: one pixel more, the fill's own border is an edge of the query alone
    rim = np.ones((5, 5) if edges else (3, 3), np.uint8)
    overlap = cv2.erode(inside, rim) > 0.5
    a, b = warped[overlap], c[overlap]
    whole = _correlation(a, b)
    if whole is None:
        return Agreement(0.0, 0.0)  # a blank or tiny overlap proves nothing: not the same
    ys, xs = np.nonzero(overlap)  # the same order as the overlap's pixels above
    cells = _cell_of(ys, CELLS) * CELLS + _cell_of(xs, CELLS)
    parts = _correlations(a, b, cells, CELLS * CELLS, CELL_PIXELS, CELL_FLAT)
    least = min(whole, float(np.nanmin(parts, initial=whole)))
    return Agreement(whole, least)


def _cell_of(positions: np.ndarray, cells: int) -> np.ndarray:
    """Which of ``cells`` equal parts of the span of ``positions`` each one falls in
    (the parts' bounds rounded down to whole pixels, as slices of an image would be)."""
    bounds = np.linspace(positions.min(), positions.max() + 1, cells + 1).astype(np.int64)
    return np.clip(np.searchsorted(bounds, positions, side="right") - 1, 0, cells - 1)


def _correlations(
    a: np.ndarray, b: np.ndarray, cells: np.ndarray, n: int, least: int, flat: float
) -> np.ndarray:
    """The normalised cross-correlation of ``a`` and ``b`` within each of ``n`` cells
    (``cells``: the cell of each pixel) at once; NaN for a cell of fewer than ``least``
    pixels or blank (a spread below ``flat`` in either)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    count = np.bincount(cells, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = np.bincount(cells, a, n) / count
        mb = np.bincount(cells, b, n) / count
        va = np.maximum(np.bincount(cells, a * a, n) / count - ma * ma, 0.0)
        vb = np.maximum(np.bincount(cells, b * b, n) / count - mb * mb, 0.0)
        cov = np.bincount(cells, a * b, n) / count - ma * mb
        r = cov / np.sqrt(va * vb)
    counted = (count >= least) & (np.minimum(va, vb) >= flat * flat)
    return np.where(counted, r, np.nan)


def _edges(gray: np.ndarray) -> np.ndarray:
    import cv2

    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return np.sqrt(gx * gx + gy * gy)


def _correlation(
    a: np.ndarray, b: np.ndarray, least: int = MIN_OVERLAP, flat: float = FLAT
) -> float | None:
    """Normalised cross-correlation; None for fewer than ``least`` pixels or a blank."""
    r = _correlations(a, b, np.zeros(len(a), np.int64), 1, least, flat)[0]
    return None if np.isnan(r) else float(r)
