"""Perceptual hashes of whole images: a candidate source of the duplicates pass.

The CNN vector of a copy shrunk to a thumbnail (a 300 px photo at 15-40%: 45-120 px)
is far from its original's, as the model sees it upscaled to 224 px; the low
frequencies of its gray levels are not. Each image is reduced to 32 x 32 gray levels
and the lowest 8 x 8 of its 2-D DCT kept, without the mean (a pHash before the
median cut, kept real: the nearest by cosine rank copies better than Hamming
distances of the bits). Gray levels make it colour- and grayscale-invariant, the
normalisation brightness- and contrast-invariant, and mirrored and quarter-turned
copies are found by searching with the eight flips and turns of each image's
coefficients (exact in the DCT domain: a flip negates the odd frequencies, a turn
transposes), so one hash per image is stored in the index.

Each image proposes its ``HASH_NEIGHBOURS`` nearest as candidate pairs, which are
verified like the others (lookalike.search.copy_groups). On the bench's two-edit
copies (scripts/bench_duplicates.py, seed 0) 2 of them add 0.10 to the candidate
stage's recall (0.913 with 6 CNN neighbours; 0.803 without), nearly all resized
copies; 3 or 5 add nothing more. Crops defeat it (a crop's low frequencies are
another picture's); those the CNN vector and local features find.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import load_image
from lookalike.indexer.store.faiss_loader import load_faiss

log = logging.getLogger(__name__)

SIDE = 32  # gray levels the image is reduced to, SIDE x SIDE
BAND = 8  # the lowest BAND x BAND frequencies are kept, but the mean
HASH_NEIGHBOURS = 2  # nearest hashes per image proposed as candidate pairs
FLAT = 1e-3  # AC energy (gray levels 0-1) below which an image is blank: no hash
VIEWS_CHUNK = 50_000  # images whose views are computed at a time
EXACT_UP_TO = 50_000  # hashes searched exhaustively up to here; an HNSW graph above
Pair = tuple[int, int]


def _dct_matrix() -> np.ndarray:
    n = np.arange(SIDE)
    c = np.cos(np.pi * (2 * n[None, :] + 1) * np.arange(BAND)[:, None] / (2 * SIDE))
    c[0] /= np.sqrt(2.0)
    return (c * np.sqrt(2.0 / SIDE)).astype(np.float32)


DCT = _dct_matrix()  # (BAND, SIDE): the first BAND rows of the orthonormal DCT-II
# (-1)^k: a horizontal flip negates the odd horizontal frequencies, a vertical one the
# odd vertical ones.
ODD = np.where(np.arange(BAND) % 2 == 1, -1.0, 1.0).astype(np.float32)


def coefficients(image: Image.Image) -> np.ndarray | None:
    """The BAND x BAND low frequencies of the image's gray levels; None when blank."""
    gray = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    d = DCT @ (np.asarray(gray, dtype=np.float32) / 255.0) @ DCT.T
    d[0, 0] = 0.0
    if float(np.square(d).sum()) < FLAT:
        return None
    return d


def views(d: np.ndarray) -> np.ndarray:
    """The eight flips and turns of coefficients ``d``, as unit rows (8, BAND^2 - 1)."""
    return many_views(d[None])[0]


def many_views(d: np.ndarray) -> np.ndarray:
    """``views`` of each of coefficients ``d`` (n, BAND, BAND): (n, 8, BAND^2 - 1)."""
    flip_x, flip_y = d * ODD[None, None, :], d * ODD[None, :, None]
    turn = d * ODD[None, :, None] * ODD[None, None, :]

    def t(x: np.ndarray) -> np.ndarray:
        return x.transpose(0, 2, 1)

    out = np.stack([d, flip_x, flip_y, turn, t(d), t(flip_x), t(flip_y), t(turn)], axis=1)
    out = out.reshape(len(d), 8, -1)[:, :, 1:]  # the mean (0, 0) is left out
    return out / np.linalg.norm(out, axis=2, keepdims=True)


def image_hashes(paths: Mapping[int, str], workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, views (n, 8, BAND^2 - 1)) of the readable, not blank images of ``paths``,
    decoded on ``workers`` threads (0: one per core, up to 4)."""
    return stacked_views(hash_coefficients(paths, workers))


def hash_coefficients(paths: Mapping[int, str], workers: int = 0) -> dict[int, np.ndarray | None]:
    """The ``coefficients`` of each readable image of ``paths`` (None: blank; an
    unreadable image is left out), decoded on ``workers`` threads (0: one per core, up
    to 4)."""
    items = list(paths.items())
    threads = max(1, workers or min(4, os.cpu_count() or 1))
    if threads == 1 or len(items) < 2:
        found = [_coefficients_of(path) for _, path in items]
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="hash") as pool:
            found = list(pool.map(_coefficients_of, [p for _, p in items], chunksize=64))
    return {
        image_id: d for (image_id, _), (readable, d) in zip(items, found, strict=True) if readable
    }


def stacked_views(found: Mapping[int, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, views (n, 8, BAND^2 - 1)) of the images with coefficients in ``found``."""
    ids = [image_id for image_id, d in found.items() if d is not None]
    out = np.zeros((len(ids), 8, BAND * BAND - 1), np.float32)
    coefficients = [d for d in found.values() if d is not None]
    for start in range(0, len(ids), VIEWS_CHUNK):
        out[start : start + VIEWS_CHUNK] = many_views(
            np.stack(coefficients[start : start + VIEWS_CHUNK])
        )
    return np.array(ids, dtype=np.int64), out


def _coefficients_of(path: str) -> tuple[bool, np.ndarray | None]:
    """(readable, coefficients or None for a blank image)."""
    try:
        image = load_image(path, min_side=SIDE).image
    except UnreadableImage as e:
        log.debug("no hash for %s: %s", path, e.reason)
        return False, None
    return True, coefficients(image)


def hash_pairs(
    ids: np.ndarray,
    hashes: np.ndarray,
    neighbours: int = HASH_NEIGHBOURS,
    exact_up_to: int = EXACT_UP_TO,
) -> set[Pair]:
    """Each image and its ``neighbours`` nearest by the best cosine over the eight views
    (smaller id first); searched exhaustively up to ``exact_up_to`` hashes, through an
    HNSW graph above."""
    n = len(ids)
    if n < 2 or neighbours < 1:
        return set()
    faiss = load_faiss()
    dim = hashes.shape[2]
    plain = np.ascontiguousarray(hashes[:, 0])
    if n <= exact_up_to:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(plain)
    k = min(n, neighbours + 1)
    scores, found = [], []
    for v in range(hashes.shape[1]):
        s, f = index.search(np.ascontiguousarray(hashes[:, v]), k)
        scores.append(s)
        found.append(f)
    s, f = np.concatenate(scores, axis=1), np.concatenate(found, axis=1)
    f[f == np.arange(n)[:, None]] = -1  # itself
    order = np.argsort(-s, axis=1, kind="stable")
    out: set[Pair] = set()
    for row, cols in enumerate(order):
        taken: list[int] = []
        for j in f[row, cols].tolist():
            if j >= 0 and j not in taken:
                taken.append(j)
                if len(taken) == neighbours:
                    break
        a = int(ids[row])
        out.update((min(a, int(ids[j])), max(a, int(ids[j]))) for j in taken)
    return out
