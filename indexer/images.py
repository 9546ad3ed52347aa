"""Image loading: any Pillow mode and the common formats to an RGB image.

Only the formats in ``IMAGE_FORMATS`` are ever opened (by their content, whatever the
file's name): Pillow would otherwise hand EPS or PDF data to Ghostscript, an external
program, and try dozens of rarely used decoders. Every image Lookalike opens (library
files, queries, uploads, thumbnails, copy descriptors) goes through ``open_image``.

JPEGs are decoded at reduced size (``Image.draft``) when the caller only needs a
small image, which is most of the decode cost of a large photo; EXIF orientation
is applied; decompression bombs are refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lookalike.indexer.errors import UnreadableImage

# Lookalike checks the pixel count itself (see ``max_pixels``), with a limit the user
# can raise; Pillow's own global check would warn or raise with a less useful message.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

TOO_LARGE = "too large"  # how a refusal for the pixel limit begins (a higher limit retries it)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
# The formats Lookalike decodes (Pillow's names): the ones its file extensions name.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
DEFAULT_MAX_PIXELS = 150_000_000
UNNAMED_BYTES = "<bytes>"  # what an image decoded from bytes with no name is called
NEUTRAL_BACKGROUND = (255, 255, 255)

# EXIF orientations that swap width and height.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class LoadedImage:
    """An RGB image and the size of the original (after EXIF rotation)."""

    image: Image.Image
    width: int
    height: int


def is_image_name(name: str) -> bool:
    """True when the file name has one of the extensions Lookalike indexes."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def load_image(
    source: str | Path | bytes,
    *,
    min_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> LoadedImage:
    """Decode an image file (or its bytes) to RGB.

    Args:
        source: a path, or the file's bytes.
        min_side: the smallest shorter side the caller needs; JPEGs are decoded at
            the largest reduction that keeps at least this size. None decodes fully.
        max_pixels: images with more pixels than this are refused (decompression bombs).
        name: the name to use in error messages when ``source`` is bytes.

    Returns:
        The RGB image and the original's width and height (after EXIF rotation).

    Raises:
        UnreadableImage: the data is empty, not an image, truncated, or too large.
    """
    label = name or (str(source) if not isinstance(source, bytes) else UNNAMED_BYTES)
    data = source if isinstance(source, bytes) else _read(source)
    if not data:
        raise UnreadableImage(label, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = open_image(data)
            return _decode(img, label, min_side, max_pixels)
    except UnreadableImage:
        raise
    except UnidentifiedImageError as e:
        raise UnreadableImage(label, "not a readable image") from e
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise UnreadableImage(label, f"corrupt image ({e})") from e


def open_image(data: bytes) -> Image.Image:
    """Pillow's lazy image over ``data``, of one of the IMAGE_FORMATS only.

    Raises:
        UnidentifiedImageError: not an image of an allowed format.
    """
    return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)


def decoded_pixels(data: bytes, min_side: int | None = None) -> int:
    """The pixels ``load_image(data, min_side=...)`` decodes, read from the header only:
    the full size, or a JPEG's reduced (draft) size; 0 when ``data`` is not an image."""
    try:
        with open_image(data) as img:
            width, height = img.size
            jpeg = img.format == "JPEG"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return 0
    reduction = 1
    if min_side and jpeg and min(width, height) > min_side:
        scale = min_side / max(1, min(width, height))
        wanted = (int(width * scale) + 1, int(height * scale) + 1)
        fits = min(width // wanted[0], height // wanted[1])  # as Image.draft chooses
        reduction = max(r for r in (1, 2, 4, 8) if r <= max(1, fits))
    return -(-width // reduction) * -(-height // reduction)


HEADER_BYTES = 256 * 1024  # a JPEG's quantisation tables lie in its header, before this


def luminance_table(path: str | Path) -> list[int] | None:
    """A JPEG file's luminance quantisation table (64 values) read from its header; None
    for another format, or a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
        with open_image(head) as img:
            tables = getattr(img, "quantization", None) or {}
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None
    table = tables.get(0)
    return None if table is None or len(table) != 64 else [int(v) for v in table]


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError as e:
        raise UnreadableImage(path, "is a directory") from e
    except OSError as e:
        raise UnreadableImage(path, f"cannot read ({e.strerror or e})") from e


def _decode(img: Image.Image, label: str, min_side: int | None, max_pixels: int) -> LoadedImage:
    width, height = img.size
    if width * height > max_pixels:
        raise UnreadableImage(
            label,
            f"{TOO_LARGE}: {width}x{height} = {width * height / 1e6:.0f} megapixels "
            f"(limit {max_pixels / 1e6:.0f}; raise it with --max-pixels)",
        )
    orientation = _orientation(img)
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    if min_side and img.format == "JPEG":
        scale = min_side / max(1, min(img.size))
        if scale < 1:
            img.draft("RGB", (int(img.size[0] * scale) + 1, int(img.size[1] * scale) + 1))
    if getattr(img, "is_animated", False):
        img.seek(0)
    img.load()
    if orientation and orientation != 1:
        img = ImageOps.exif_transpose(img)
    return LoadedImage(to_rgb(img), width, height)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except (ValueError, TypeError, SyntaxError, OSError):
        return 1


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha over a white background, 16-bit scaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, NEUTRAL_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _wide_to_rgb(img)
    return img.convert("RGB")


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and float images: scale the value range into 8 bits."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.size == 0:
        return Image.new("RGB", img.size)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 255:
        scaled = arr
    elif lo >= 0 and hi <= 65535 and img.mode != "F":
        scaled = arr / 257.0
    else:
        scaled = (arr - lo) * (255.0 / max(hi - lo, 1e-6))
    return Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")


def center_crop_resize(img: Image.Image, resize: int, crop: int) -> Image.Image:
    """Resize the shorter side to ``resize`` then centre-crop ``crop`` x ``crop``, in one step.

    Equivalent to torchvision's Resize(resize) + CenterCrop(crop) up to rounding, but
    resamples only the cropped region.
    """
    w, h = img.size
    side = min(w, h) * crop / resize
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize(
        (crop, crop), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
    )


def parse_box(
    text: str, error: type[Exception] = ValueError, what: str = "a box"
) -> tuple[float, float, float, float]:
    """'X0,Y0,X1,Y1' as four floats; anything else raises ``error`` saying so.

    The one parser of the box text the CLI and the web take (a search region, a
    labelled box); what the box must satisfy against its image is checked where it
    is used.
    """
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise error(f"{what} is four numbers X0,Y0,X1,Y1, not {text!r}")
    return values[0], values[1], values[2], values[3]


def crop_box(img: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Crop an RGB image to a box in pixel coordinates (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return img.crop((x0, y0, x1, y1))


Preprocess = Callable[[Image.Image], np.ndarray]
