"""Image bytes: thumbnails, previews and original files, by catalog id only.

No route takes a path: the file served is the one the catalog holds for the id,
so nothing outside the indexed images (and their cached thumbnails) can be read, and
only while the file is still the one indexed (LibraryService.media_file).
URLs carry the content hash (``?v=``); such a URL is cached by the browser for a
year, since a changed image gets a new hash and so a new URL. Every answer carries
``Cross-Origin-Resource-Policy: same-origin``: other sites cannot embed the images.
"""

from __future__ import annotations

import io
import mimetypes
import os

from flask import Blueprint, current_app, request, send_file
from werkzeug.wrappers import Response  # what make_conditional returns (Flask's is a subclass)

from lookalike.indexer.errors import UnreadableImage
from lookalike.webapp.services import LibraryService, NotFound
from lookalike.webapp.thumbnails import ThumbnailCache

bp = Blueprint("media", __name__, url_prefix="/api/images")

YEAR = 365 * 24 * 3600
BROWSER_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"}


def _service() -> LibraryService:
    return current_app.extensions["lookalike"]


def _cache() -> ThumbnailCache:
    return current_app.extensions["lookalike.thumbnails"]


def _scaled(image_id: int, size: int) -> Response:
    media = _service().media_file(image_id)
    with media.file:
        try:
            got = _cache().get(image_id, media.file.read, media.digest, size)
        except UnreadableImage as e:
            raise NotFound(f"readable image file ({e.reason})", image_id) from e
    body = io.BytesIO(got) if isinstance(got, bytes) else got
    response = send_file(
        body, mimetype="image/jpeg", etag=f"{media.digest}-{size}", conditional=False
    )
    return _cached(response, media.digest)


def _cached(response: Response, digest: str) -> Response:
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.args.get("v") == digest[:16]:
        response.cache_control.no_cache = None  # send_file's default: off for these
        response.cache_control.public = True
        response.cache_control.max_age = YEAR
        response.cache_control.immutable = True
    else:
        response.cache_control.no_cache = True  # revalidate by ETag
    return response.make_conditional(request)


@bp.get("/<int:image_id>/thumbnail")
def thumbnail(image_id: int):
    return _scaled(image_id, current_app.config["THUMBNAIL_SIZE"])


@bp.get("/<int:image_id>/preview")
def preview(image_id: int):
    return _scaled(image_id, current_app.config["PREVIEW_SIZE"])


@bp.get("/<int:image_id>/file")
def original(image_id: int):
    """The indexed file itself (as a download unless browsers show its type)."""
    media = _service().media_file(image_id)  # served from this open file, checked
    mimetype = mimetypes.guess_type(media.path)[0] or "application/octet-stream"
    inline = mimetype in BROWSER_TYPES
    response = send_file(
        media.file,
        mimetype=mimetype if inline else "application/octet-stream",
        as_attachment=not inline,
        download_name=os.path.basename(media.path),
        etag=media.digest,
        conditional=False,
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return _cached(response, media.digest)
