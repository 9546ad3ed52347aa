"""Where is the main object of a query image? A class-activation map, thresholded.

The default CNN classifies its pooled 7x7 feature map with a linear ImageNet
head, so the head's weights say how much each position of the map speaks for
each class (Zhou et al., "Learning deep features for discriminative
localization", CVPR 2016). The embedder computes that map weighted by the class
probabilities (``EfficientNetLite0.class_activation``) on the whole image
squashed to the model's input; here it is upsampled to the image, the positions
above ``threshold`` of its maximum are kept, and the bounding box of the connected
region around the strongest position, grown by a small margin, is the object.

Only models with a classifier head can do this; an open_clip library gets a
``BadQuery`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
from PIL import Image

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.models.efficientnet import CROP
from lookalike.indexer.models.protocol import Embedder

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

PixelBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class LocalizeOptions:
    # Positions kept: above this fraction of the map's maximum. Measured on 80 dev objects
    # pasted into plain and cluttered canvases: mean IoU 0.51 at 0.5 (0.46 at 0.3, 0.44
    # at 0.7; the whole image: 0.24).
    threshold: float = 0.5
    margin: float = 0.0  # grow the box by this fraction of the image's sides, each way
    min_side: float = 0.1  # the box is at least this fraction of each image side
    grid: int = 112  # the map is upsampled to this many cells along the longer side


class Localization(NamedTuple):
    box: PixelBox  # x0, y0, x1, y1 in the image's pixels (x1, y1 exclusive)
    activation: np.ndarray  # the raw class-activation map (7 x 7)
    found: bool  # False when the map had no positive evidence (box = whole image)


class Localizer(Embedder, Protocol):
    """An embedder with a class-activation map (the default CNN)."""

    def class_activation(self, batch: np.ndarray) -> np.ndarray:
        """Class-activation maps (n, h, w) of a uint8 NHWC batch."""
        ...


def can_localize(embedder: Embedder) -> TypeIs[Localizer]:
    """True when the model has a classifier head, hence class-activation maps."""
    return embedder.info.class_head


def localize(
    embedder: Embedder, image: Image.Image, options: LocalizeOptions | None = None
) -> Localization:
    """The bounding box of the main object of ``image`` (see module docstring).

    Args:
        embedder: a model with ``class_activation`` (the default CNN).
        image: the RGB query image.
        options: thresholds and margins (defaults: LocalizeOptions()).

    Returns:
        The box in ``image``'s pixel coordinates, the raw map, and whether an object
        was found (if not, the box is the whole image).

    Raises:
        BadQuery: the model has no classifier head to localise with.
    """
    if not can_localize(embedder):
        raise BadQuery(
            f"object search needs the default CNN's ImageNet head; the model "
            f"{embedder.info.name!r} has none (use --box X0,Y0,X1,Y1 instead)"
        )
    options = options or LocalizeOptions()
    side = CROP  # the square the class-activation map is computed on
    pixels = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    activation = np.asarray(embedder.class_activation(pixels[None])[0], dtype=np.float32)
    box = box_from_activation(activation, image.size, options)
    if box is None:
        return Localization((0, 0, image.size[0], image.size[1]), activation, False)
    return Localization(box, activation, True)


def box_from_activation(
    activation: np.ndarray, size: tuple[int, int], options: LocalizeOptions | None = None
) -> PixelBox | None:
    """The object box for a map covering a whole image of ``size`` (w, h); None: no object."""
    import cv2  # heavy (OpenCV): only when a box is found or a copy verified

    options = options or LocalizeOptions()
    w, h = size
    peak = float(activation.max())
    if not np.isfinite(peak) or peak <= 0:
        return None
    scale = options.grid / max(w, h)
    gw, gh = max(1, round(w * scale)), max(1, round(h * scale))
    heat = np.asarray(
        Image.fromarray(np.maximum(activation, 0).astype(np.float32), "F").resize(
            (gw, gh), Image.Resampling.BILINEAR
        )
    )
    mask = (heat >= options.threshold * heat.max()).astype(np.uint8)
    _n, labels, stats, _centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x0, y0, bw, bh = (int(v) for v in stats[labels[y, x], :4])
    # grid cells to pixels, then the margin and the minimum size, inside the image
    fx, fy = w / gw, h / gh
    box = [x0 * fx, y0 * fy, (x0 + bw) * fx, (y0 + bh) * fy]
    box = _grow(box, options.margin * w, options.margin * h, w, h)
    box = _at_least(box, options.min_side * w, options.min_side * h, w, h)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = min(max(0, x0), w - 1), min(max(0, y0), h - 1)
    return x0, y0, min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))


def _grow(box: list[float], dx: float, dy: float, w: int, h: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(w), x1 + dx), min(float(h), y1 + dy)]


def _at_least(box: list[float], min_w: float, min_h: float, w: int, h: int) -> list[float]:
    """Widen a box around its centre to a minimum size, shifted back inside the image."""
    x0, y0, x1, y1 = box
    for lo, hi, least, limit, axis in ((x0, x1, min_w, w, 0), (y0, y1, min_h, h, 1)):
        if hi - lo < least:
            centre = (lo + hi) / 2
            lo = min(max(0.0, centre - least / 2), max(0.0, limit - least))
            hi = min(float(limit), lo + least)
        if axis == 0:
            x0, x1 = lo, hi
        else:
            y0, y1 = lo, hi
    return [x0, y0, x1, y1]
