"""Box routes: an image's boxes (list, create, move/resize/relabel, delete) and its
suggested main-object box.

Coordinates are the image's pixels as indexed (EXIF-rotated, full size), as in a
region search. A write names the image's content hash it was made on (``hash``, from
the listing); another content is 409 and nothing is written. The checks and the
crop vectors are lookalike.classifier.boxes; the suggestion is the ``--object``
localisation (lookalike.search.localize), stored as a 'suggested' box without a label
that a PATCH with a label accepts (it becomes human).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from lookalike.classifier import boxes
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.images import load_image
from lookalike.indexer.store import boxes as store
from lookalike.indexer.store.catalog import ImageRow
from lookalike.search.localize import can_localize, localize
from lookalike.webapp.inputs import json_body
from lookalike.webapp.services import LibraryService, NotFound

bp = Blueprint("boxes", __name__, url_prefix="/api/images/<int:image_id>/boxes")


def service() -> LibraryService:
    return current_app.extensions["lookalike"]


def _hash_arg(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadQuery('"hash" must be the image\'s content hash (a string), as listed')
    return value


def _image(svc: LibraryService, image_id: int) -> ImageRow:
    row = svc.catalog.image(image_id)
    if row is None:
        raise NotFound("image", image_id)
    return row


def _listing(svc: LibraryService, image_id: int) -> dict[str, Any]:
    row = _image(svc, image_id)
    found = store.boxes_of(svc.catalog, image_id)
    return {
        "image": {
            "id": image_id,
            "width": row["width"],
            "height": row["height"],
            "hash": row["hash"],
        },
        "boxes": [boxes.box_json(b) for b in found],
        "can_suggest": svc.object_search() and can_localize(svc.searcher.embedder),
        "suggestion_dismissed": store.suggestion_dismissed(svc.catalog, image_id),
    }


def _budget(svc: LibraryService, image_id: int):
    """The decode budget for the image's full-size decode (crops are cut from it)."""
    row = _image(svc, image_id)
    return current_app.extensions["lookalike.decode_budget"].reserve(row["width"] * row["height"])


@bp.get("")
def list_boxes(image_id: int):
    return jsonify(_listing(service(), image_id))


@bp.post("")
def create(image_id: int):
    """``{"box": [x0, y0, x1, y1], "label": "...", "hash": "..."}`` -> 201 and the box."""
    body = json_body()
    svc = service()
    expect = _hash_arg(body.get("hash"))
    with _budget(svc, image_id), svc.writable() as library:
        row = boxes.add_box(
            library, svc.searcher.embedder, image_id, body.get("box"), body.get("label"), expect
        )
    return jsonify({"box": boxes.box_json(row)}), 201


@bp.patch("/<int:box_id>")
def update(image_id: int, box_id: int):
    """``{"box"?: [...], "label"?: "...", "hash"?: "..."}``: move, resize, relabel, accept."""
    body = json_body()
    if "box" not in body and "label" not in body:
        raise BadQuery('send "box", "label" or both')
    # Left out keeps the box's own; null is no value to change it to.
    if "box" in body and body["box"] is None:
        raise BadQuery('"box" must be four numbers [x0, y0, x1, y1], not null (or leave it out)')
    if "label" in body and body["label"] is None:
        raise BadQuery('"label" must be a non-empty string, not null (or leave it out)')
    svc = service()
    expect = _hash_arg(body.get("hash"))
    with _budget(svc, image_id), svc.writable() as library:
        row = boxes.update_box(
            library,
            svc.searcher.embedder,
            box_id,
            region=body.get("box"),
            label=body.get("label"),
            image_id=image_id,
            expect_hash=expect,
        )
    return jsonify({"box": boxes.box_json(row)})


@bp.delete("/<int:box_id>")
def delete(image_id: int, box_id: int):
    svc = service()
    _image(svc, image_id)
    with svc.writable() as library:
        n = boxes.delete_boxes(library, [box_id], image_id=image_id)
    return jsonify({"deleted": n})


WHOLE = 0.9  # a suggested box covering this share of the image or more is the image


@bp.post("/suggest")
def suggest(image_id: int):
    """The main object's box, stored as the image's suggested box (replacing one)."""
    svc = service()
    embedder = svc.searcher.embedder
    if not (svc.object_search() and can_localize(embedder)):
        raise BadQuery(
            f"the model {embedder.info.name!r} cannot localise objects (it has no "
            "classifier head); draw the box instead"
        )
    with _budget(svc, image_id):
        media = svc.media_file(image_id)
        with media.file:
            data = media.file.read()
        image = load_image(data, name=media.path).image
        found = localize(embedder, image)
    x0, y0, x1, y1 = found.box
    if not found.found or (x1 - x0) * (y1 - y0) >= WHOLE * image.width * image.height:
        # no main object apart from the whole picture: nothing to suggest (the image's
        # own label already says what the whole picture is)
        return jsonify({"box": None, "found": False})
    with svc.writable() as library:
        row = boxes.add_suggested(library, image_id, found.box)
    return jsonify({"box": boxes.box_json(row), "found": found.found}), 201
