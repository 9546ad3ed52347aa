"""Boxes: a person's labelled region of an image, with its own vector.

A box is checked against the image as indexed (whole pixels inside it, some area,
x0 < x1 and y0 < y1) and its label passes the one label rule (lookalike.indexer.label_text)
with the spelling of the same label on images or other boxes. Each human box gets the
vector of its crop, embedded as a region query embeds a region (the full-size decode,
cropped, the model's own preprocessing), so a box is a query and the tagger learns
from it as from a labelled image (classifier/tagging/tagger.py).

The crop is read from the image's file, which must still hold the content indexed
(its hash); the box records that hash. When the image's content changes (an index
run re-embedded it), its boxes are stale: listed as such, never searched or learnt
from, until a person moves or confirms them on the new content (``update`` with the
image's current hash). Every change is one transaction, checked before it starts:
a bad box or label changes nothing.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lookalike.classifier.labels import RejectedRow, Row
from lookalike.indexer.errors import BadQuery, LookalikeError
from lookalike.indexer.images import DEFAULT_MAX_PIXELS, load_image
from lookalike.indexer.images import parse_box as parse_box_text
from lookalike.indexer.label_text import canonical, check_label, match_key
from lookalike.indexer.models.protocol import Embedder, FeatureVector
from lookalike.indexer.scan import file_hash
from lookalike.indexer.store import boxes as store
from lookalike.indexer.store.boxes import BoxRow, PixelBox
from lookalike.indexer.store.catalog import ImageRow
from lookalike.indexer.store.library import Library


class BadBox(BadQuery):
    """A region that cannot be a box of its image (the message says why)."""


class UnknownBox(LookalikeError):
    """No box with this id (or not on the image named)."""

    def __init__(self, box_id: int) -> None:
        self.box_id = box_id
        super().__init__(f"no box with id {box_id}")


class UnknownImage(LookalikeError):
    def __init__(self, image_id: int) -> None:
        self.image_id = image_id
        super().__init__(f"no image with id {image_id}")


class ImageChanged(LookalikeError):
    """The image's content is not the one the request (or the box) was made on."""


def parse_box(text: str) -> tuple[float, ...]:
    """'X0,Y0,X1,Y1' as numbers (checked against an image by :func:`check_box`)."""
    return parse_box_text(text, BadBox)


def check_box(region: Any, width: int, height: int) -> PixelBox:
    """The region (x0, y0, x1, y1) as whole pixels of a ``width`` x ``height`` image.

    Raises:
        BadBox: not four finite numbers, zero area, inverted, outside the image, or
            covering no whole pixel.
    """
    if not isinstance(region, list | tuple) or len(region) != 4:
        raise BadBox("a box is four numbers [x0, y0, x1, y1]")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in region):
        raise BadBox("box coordinates must be numbers")
    x0, y0, x1, y1 = (float(v) for v in region)
    shown = f"{x0:g},{y0:g},{x1:g},{y1:g}"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise BadBox("box coordinates must be finite numbers")
    if x1 < x0 or y1 < y0:
        raise BadBox(f"box {shown} is inverted: give x0 < x1 and y0 < y1")
    if x1 == x0 or y1 == y0:
        raise BadBox(f"box {shown} has zero area")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise BadBox(f"box {shown} is outside the {width}x{height} image")
    pixels = round(x0), round(y0), round(x1), round(y1)
    if pixels[2] <= pixels[0] or pixels[3] <= pixels[1]:
        raise BadBox(f"box {shown} covers no whole pixel")
    return pixels


def box_label(library: Library, label: Any) -> str:
    """The label checked, in the spelling the library already uses for it."""
    if not isinstance(label, str):
        raise BadQuery("a box's label must be a non-empty string")
    text = check_label(label)
    existing = library.catalog.label_names() + store.box_label_names(library.catalog)
    return canonical([text], existing)[text]


def crop_vector(
    embedder: Embedder, image: ImageRow, region: PixelBox, max_pixels: int = DEFAULT_MAX_PIXELS
) -> FeatureVector:
    """The vector of ``region`` of the image's file, which must hold the content indexed.

    Raises:
        ImageChanged: the file's content is not the content indexed (index again).
        UnreadableImage: the file cannot be read or decoded.
    """
    try:
        with open(image["path"], "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageChanged(
            f"{image['path']}: cannot be read ({e.strerror or e}); a box needs the file"
        ) from e
    if file_hash(data) != image["hash"]:
        raise ImageChanged(
            f"{image['path']} changed since it was indexed; index it again, then draw the box"
        )
    loaded = load_image(data, max_pixels=max_pixels, name=image["path"])
    pixels = embedder.preprocess(loaded.image.crop(region))
    return embedder.embed(pixels[None], class_probs=False).vectors[0]


def _image(library: Library, image_id: int, expect_hash: str | None) -> ImageRow:
    image = library.catalog.image(int(image_id))
    if image is None:
        raise UnknownImage(image_id)
    if expect_hash is not None and expect_hash != image["hash"]:
        raise ImageChanged(
            f"image {image_id} changed since it was shown (its content is new); "
            "reload it and draw the box again"
        )
    return image


def _current(library: Library, image: ImageRow) -> None:
    """Inside the write transaction: the image still has the content checked before."""
    now = library.catalog.image(image["id"])
    if now is None:
        raise UnknownImage(image["id"])
    if now["hash"] != image["hash"]:
        raise ImageChanged(f"image {image['id']} changed while the box was saved; try again")


def add_box(
    library: Library,
    embedder: Embedder,
    image_id: int,
    region: Any,
    label: Any,
    expect_hash: str | None = None,
) -> BoxRow:
    """Add a human box with its label and vector; returns it.

    Args:
        expect_hash: the image's content hash the box was drawn on (the web page
            sends what it showed); None: the content the catalog has now.

    Raises:
        UnknownImage, BadBox, BadLabel, ImageChanged: nothing is written.
    """
    image = _image(library, image_id, expect_hash)
    pixels = check_box(region, image["width"], image["height"])
    text = box_label(library, label)
    vector = crop_vector(embedder, image, pixels)
    catalog = library.catalog
    with catalog.transaction() as conn:
        _current(library, image)
        new = store.insert_box(
            conn, image["id"], pixels, text, "human", image["hash"], vector, embedder.info.key()
        )
        catalog.bump_labels_version(conn)
    found = store.box(catalog, new)
    assert found is not None
    return found


def add_suggested(library: Library, image_id: int, region: PixelBox) -> BoxRow:
    """Store the main-object box as the image's suggested box (replacing an earlier one)."""
    image = _image(library, image_id, None)
    pixels = check_box(region, image["width"], image["height"])
    catalog = library.catalog
    with catalog.transaction() as conn:
        store.delete_suggested(conn, image["id"])
        new = store.insert_box(
            conn, image["id"], pixels, None, "suggested", image["hash"], None, None
        )
    found = store.box(catalog, new)
    assert found is not None
    return found


def update_box(
    library: Library,
    embedder: Embedder,
    box_id: int,
    *,
    region: Any = None,
    label: Any = None,
    image_id: int | None = None,
    expect_hash: str | None = None,
) -> BoxRow:
    """Move, resize or relabel a box; a suggested box becomes human (accepted).

    ``region`` or ``label`` None keeps the box's own. A stale box (its image's
    content changed since it was drawn) is only updated with ``expect_hash`` equal
    to the image's current hash: a person placed it on the new content.

    Raises:
        UnknownBox, BadBox, BadLabel, ImageChanged: nothing is written.
    """
    catalog = library.catalog
    old = store.box(catalog, int(box_id))
    if old is None or (image_id is not None and old.image_id != int(image_id)):
        raise UnknownBox(box_id)
    image = _image(library, old.image_id, expect_hash)
    if old.stale and expect_hash is None:
        raise ImageChanged(
            f"box {box_id} was drawn on earlier content of image {old.image_id}; place it "
            "on the image as it is now (send its current hash) or delete it"
        )
    pixels = check_box(old.box if region is None else region, image["width"], image["height"])
    if label is None and old.label is None:
        raise BadQuery(f"box {box_id} has no label yet: give one to accept it")
    text = old.label if label is None else box_label(library, label)
    vector = crop_vector(embedder, image, pixels)
    with catalog.transaction() as conn:
        _current(library, image)
        if store.box(catalog, old.id) is None:
            raise UnknownBox(box_id)
        store.update_box(
            conn, old.id, pixels, text, "human", image["hash"], vector, embedder.info.key()
        )
        catalog.bump_labels_version(conn)
    found = store.box(catalog, old.id)
    assert found is not None
    return found


def delete_boxes(library: Library, box_ids: Sequence[int], image_id: int | None = None) -> int:
    """Delete boxes by id, all or none: UnknownBox when any is not there."""
    catalog = library.catalog
    ids = sorted({int(i) for i in box_ids})
    with catalog.transaction() as conn:
        for i in ids:
            row = store.box(catalog, i)
            if row is None or (image_id is not None and row.image_id != int(image_id)):
                raise UnknownBox(i)
            if row.origin == "suggested":  # not offered again on this content
                store.dismiss_suggestion(conn, row.image_id, row.hash)
        n = store.delete_boxes(conn, ids)
        catalog.bump_labels_version(conn)
    return n


def box_json(row: BoxRow) -> dict[str, Any]:
    """A box as the API and ``labels boxes --json`` give it."""
    return {
        "id": row.id,
        "image_id": row.image_id,
        "box": list(row.box),
        "label": row.label,
        "origin": row.origin,
        "stale": row.stale,
        "created": row.created,
        "updated": row.updated,
    }


class BoxAnnotation(NamedTuple):
    """A box read from an annotation file (a COCO annotation), not yet checked."""

    line: int  # the annotation's number in the file (from 1)
    path: str
    label: str
    region: tuple[float, float, float, float]  # x0, y0, x1, y1 in the file's pixels
    size: tuple[int, int]  # the image's width and height as the file gives them
    name: str  # how messages name it: "annotation id 7"


class NewBox(NamedTuple):
    image: ImageRow
    region: PixelBox
    label: str
    vector: FeatureVector
    model: str


@dataclass
class BoxPlan:
    """What an import of boxes takes: checked boxes with their vectors, and why not."""

    taken: list[Row] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    new: list[NewBox] = field(default_factory=list)
    unchanged: int = 0  # boxes the library has already (same image, region and label)


def plan_import(
    library: Library,
    rows: Sequence[BoxAnnotation],
    embedder: Callable[[], Embedder] | None,
) -> BoxPlan:
    """Check each box against the library's image (known path, the same size, inside
    it, some area, a usable label, not given twice), then embed the crops of the new
    ones. Nothing is written here (see :func:`write_planned`)."""
    plan = BoxPlan()
    catalog = library.catalog
    seen: dict[tuple[int, PixelBox, str], int] = {}
    checked: list[tuple[BoxAnnotation, ImageRow, PixelBox, str]] = []
    for row in rows:
        try:
            image, region, text = _check_annotation(library, row)
        except LookalikeError as e:
            plan.rejected.append(RejectedRow(row.line, row.path, row.label, f"{row.name}: {e}"))
            continue
        key = (image["id"], region, match_key(text))
        if key in seen:
            reason = f"{row.name}: the same box as annotation {seen[key]}"
            plan.rejected.append(RejectedRow(row.line, row.path, row.label, reason))
            continue
        seen[key] = row.line
        checked.append((row, image, region, text))
    if checked and embedder is None:
        for row, *_ in checked:
            reason = f"{row.name}: boxes need the library's model, which is not loaded"
            plan.rejected.append(RejectedRow(row.line, row.path, row.label, reason))
        return plan
    model = embedder() if checked and embedder is not None else None
    for row, image, region, text in checked:
        have = {
            (b.box, match_key(b.label or ""))
            for b in store.boxes_of(catalog, image["id"])
            if b.origin == "human" and not b.stale
        }
        plan.taken.append(Row(row.line, row.path, text))
        if (region, match_key(text)) in have:
            plan.unchanged += 1
            continue
        assert model is not None
        try:
            vector = crop_vector(model, image, region)
        except LookalikeError as e:
            plan.taken.pop()
            plan.rejected.append(RejectedRow(row.line, row.path, row.label, f"{row.name}: {e}"))
            continue
        plan.new.append(NewBox(image, region, text, vector, model.info.key()))
    return plan


def _check_annotation(library: Library, row: BoxAnnotation) -> tuple[ImageRow, PixelBox, str]:
    image = library.catalog.image_by_path(row.path)
    if image is None:
        raise LookalikeError("unknown path (not an image of the library)")
    if row.size != (image["width"], image["height"]):
        raise BadBox(
            f"the file gives the image as {row.size[0]}x{row.size[1]}, the library has it "
            f"as {image['width']}x{image['height']}"
        )
    return image, check_box(row.region, image["width"], image["height"]), check_label(row.label)


def write_planned(library: Library, conn: sqlite3.Connection, plan: BoxPlan) -> None:
    """Insert the plan's new boxes in the caller's transaction (after its labels, so a
    box's label takes the spelling just written for an image)."""
    if not plan.new:
        return
    catalog = library.catalog
    for new in plan.new:
        _current(library, new.image)
        text = box_label(library, new.label)
        store.insert_box(
            conn,
            new.image["id"],
            new.region,
            text,
            "human",
            new.image["hash"],
            new.vector,
            new.model,
        )
    catalog.bump_labels_version(conn)
