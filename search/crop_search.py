"""Where a small image sits in a larger one: a thumbnail cut from part of a photo.

A thumbnail of a crop (a 40 x 30 pixel corner of a photo) has too few pixels for ORB's
keypoints, and its whole differs from the whole of the photo, so neither local features
nor a whole-image comparison verify it. Its gray levels still match one part of the
photo's, at one scale: the small image is searched for in the larger one's thumbnail
(normalised cross-correlation, OpenCV's template matching), over the scales at which it
covers from ``least`` of the thumbnail's side to all of it, in both orientations.

Every scale is tried coarsely (the small image at COARSE_SIDE pixels), then the KEPT
best places finely (at CROP_SIDE, around each place and its scale). On the 2,435
pairs the bench's seed 0 searches (scripts/bench_duplicates.py; a harness outside the
repository), this takes 1.25 ms a pair against 2.51 ms for every scale at CROP_SIDE,
1.06 apart, and finds the true places at the same or a higher correlation (9 true
pairs: the least of those above 0.9 went from 0.931 to 0.946). The best place is
returned as a transform, so that the pixel check that local matches go through
(search/pixels.py) decides whether it is the same picture.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

CROP_SIDE = 24  # longer side, in pixels, of the small image where its place is refined
COARSE_SIDE = 12  # ... and where every scale is tried
COARSE_STEP = 1.1  # ratio between one scale tried and the next
KEPT = 3  # best coarse places refined
FINE_STEP = 1.02  # the scales tried around each: FINE steps of this ratio below and above
FINE = 2
NEAR = 3  # pixels around a coarse place (at CROP_SIDE) searched
BLUR = 0.7  # Gaussian sigma (pixels at the search's scale) against JPEG blocks
LARGE_BLUR = 1.0  # ... and in the larger image's pixels, before it is scaled
FLAT = 4.0  # gray-level spread below which the small image, or a place, is blank


class CropMatch(NamedTuple):
    """The best place of a small image in a larger one."""

    correlation: float  # normalised cross-correlation there, in [-1, 1]
    mirrored: bool  # found with the small image mirrored
    # 2x3 affine map from the small image's pixels (mirrored first when ``mirrored``)
    # to the larger one's
    transform: np.ndarray


def crop_search(
    small: np.ndarray, large: np.ndarray, least: float, side: int = CROP_SIDE
) -> CropMatch | None:
    """The place of gray image ``small`` in gray image ``large`` where they correlate
    best, over the scales at which ``small`` covers from ``least`` of ``large``'s side
    to all of it, plain and mirrored; None when ``small`` is blank or nowhere textured.

    Every scale is tried coarsely (``small`` at COARSE_SIDE pixels, COARSE_STEP apart);
    the KEPT best places are then searched around at ``side`` pixels, FINE_STEP apart.
    """
    import cv2  # heavy (OpenCV): only when a small image is verified

    base = cv2.GaussianBlur(large.astype(np.float32), (0, 0), LARGE_BLUR)
    coarse, fine = _template(small, COARSE_SIDE), _template(small, side)
    if coarse is None or fine is None:
        return None
    lh, lw = base.shape
    th, tw = coarse[0].shape
    whole = max(tw / lw, th / lh)  # the resize at which ``small`` covers all of ``large``
    steps = int(np.ceil(np.log(1.0 / least) / np.log(COARSE_STEP)))
    places: list[tuple[float, bool, np.ndarray]] = []
    # every coarse scale shrinks ``large`` by ``whole`` or about: from a copy shrunk once
    shrunk = _resized(base, (max(tw, round(lw * whole * 2)), max(th, round(lh * whole * 2))))
    for r in whole * COARSE_STEP ** np.arange(steps + 1):
        size = (max(tw, round(lw * r)), max(th, round(lh * r)))
        resized = _resized(shrunk if r < 2 * whole else base, size, fast=True)
        for mirrored, t in ((False, coarse[0]), (True, coarse[1])):
            found = _best_place(resized, t)
            if found is not None:
                rx, ry = size[0] / lw, size[1] / lh
                places.append((found[0], mirrored, _map(t, small, rx, ry, found[1])))
    places.sort(key=lambda p: -p[0])
    best: tuple[float, bool, np.ndarray] | None = None
    th, tw = fine[0].shape
    for _, mirrored, rough in places[:KEPT]:
        t = fine[1] if mirrored else fine[0]
        sx, sy = tw / small.shape[1], th / small.shape[0]
        for k in FINE_STEP ** np.arange(-FINE, FINE + 1):
            # the resize that makes ``t`` the size of the place, and where it is then
            r = sx / (rough[0, 0] * k)
            size = (max(tw, round(lw * r)), max(th, round(lh * r)))
            rx, ry = size[0] / lw, size[1] / lh
            resized = _resized(base, size)
            x = round((rough[0, 2] + 0.5) * rx - 0.5 * sx)
            y = round((rough[1, 2] + 0.5) * ry - 0.5 * sy)
            x0, y0 = max(0, x - NEAR), max(0, y - NEAR)
            window = resized[y0 : y + th + NEAR, x0 : x + tw + NEAR]
            if window.shape[0] < th or window.shape[1] < tw:
                continue
            found = _best_place(window, t)
            if found is not None and (best is None or found[0] > best[0]):
                best = (
                    found[0],
                    mirrored,
                    _map(t, small, rx, ry, (found[1][0] + x0, found[1][1] + y0)),
                )
    if best is None:
        return None
    return CropMatch(*best)


def _template(small: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``small`` scaled to ``side`` pixels on its longer side (never up) and blurred, and
    its mirror image; None when it is blank."""
    import cv2

    qh, qw = small.shape
    scale = min(1.0, side / max(qh, qw))
    size = (max(4, round(qw * scale)), max(4, round(qh * scale)))
    t = cv2.resize(small.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    t = cv2.GaussianBlur(t, (0, 0), BLUR)
    if float(t.std()) < FLAT:
        return None
    return t, np.ascontiguousarray(t[:, ::-1])


def _resized(image: np.ndarray, size: tuple[int, int], fast: bool = False) -> np.ndarray:
    """``image`` scaled to ``size``: by pixel areas when it shrinks by more than half
    (unless ``fast``), else bilinear."""
    import cv2

    h, w = image.shape
    area = not fast and size[0] * size[1] * 4 < w * h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def _map(template: np.ndarray, small: np.ndarray, rx: float, ry: float, at) -> np.ndarray:
    """The 2x3 map from ``small``'s pixels to the larger image's, for ``template``
    (``small`` scaled) found at ``at`` (x, y) in the larger image scaled by (rx, ry)
    (pixel centres: small (u + 0.5) * s - 0.5 + x is the scaled image's X, the larger
    image's (X + 0.5) / r - 0.5)."""
    sx, sy = template.shape[1] / small.shape[1], template.shape[0] / small.shape[0]
    x, y = at
    return np.array(
        [
            [sx / rx, 0.0, (0.5 * sx + x) / rx - 0.5],
            [0.0, sy / ry, (0.5 * sy + y) / ry - 0.5],
        ]
    )


def _best_place(image: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int]] | None:
    """The best correlation of ``template`` over ``image`` and where (x, y), places with
    no texture left out (where the normalised correlation means nothing)."""
    import cv2

    scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    _, top, _, (x, y) = cv2.minMaxLoc(scores)
    th, tw = template.shape
    if float(cv2.meanStdDev(image[y : y + th, x : x + tw])[1][0, 0]) >= FLAT:
        return float(top), (x, y)
    # the best place is blank: leave out every blank place (local spread by box sums)
    mean = cv2.boxFilter(image, -1, (tw, th), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    square = cv2.boxFilter(
        image * image, -1, (tw, th), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
    )
    spread = (square - mean * mean)[: scores.shape[0], : scores.shape[1]]
    scores[spread < FLAT * FLAT] = -1.0
    _, top, _, (x, y) = cv2.minMaxLoc(scores)
    if top <= -1.0:
        return None
    return float(top), (x, y)
