"""The JSON API: health, search, images, browsing, labels, tags and indexing jobs.

Every answer is JSON; every error is ``{"error": "..."}`` with a 4xx/5xx status
(see errors.py). docs/api.md documents each route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from PIL import Image, UnidentifiedImageError

from lookalike.classifier import exports
from lookalike.indexer.errors import BadQuery, UnreadableImage
from lookalike.indexer.images import UNNAMED_BYTES, decoded_pixels, open_image
from lookalike.indexer.store.catalog import MAX_ID
from lookalike.indexer.store.library import Library
from lookalike.search import paging, searcher
from lookalike.webapp import browse
from lookalike.webapp.inputs import boolean, form_boolean, id_list, json_body, whole_number
from lookalike.webapp.services import LibraryService

bp = Blueprint("api", __name__, url_prefix="/api")


def service() -> LibraryService:
    return current_app.extensions["lookalike"]


def parse_box(value: str | None) -> tuple[float, float, float, float] | None:
    """'x0,y0,x1,y1' in pixels of the (EXIF-rotated) query image; empty means none."""
    if value is None or value.strip() == "":
        return None
    return searcher.parse_box(value)


def sniff_upload(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Refuse an upload that is not an image of a common format, by its content.

    Only the header is read here; the full decode happens in the searcher. Formats
    outside the list (EPS or PDF, which Pillow hands to external programs) never
    reach a decoder.
    """
    if not data:
        raise BadQuery("the uploaded image is empty")
    try:
        with open_image(data) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise BadQuery(
            "the upload is not a readable image (JPEG, PNG, GIF, WebP, BMP or TIFF)"
        ) from e
    if width * height > max_pixels:
        raise BadQuery(
            f"the uploaded image is too large: {width}x{height} pixels "
            f"(limit {max_pixels / 1e6:.0f} megapixels)"
        )
    return width, height


SEARCH_MODES = {
    "fast": {"rerank": False, "multiview": False},  # one model run, vector order
    "robust": {"rerank": True, "multiview": True},  # two views + geometric re-ranking
}


def mode_arg(value: Any) -> dict[str, bool]:
    """The searcher options of a search ``mode``; none given: the server's setting."""
    if value is None or value == "":
        return {}
    if value not in SEARCH_MODES:
        raise BadQuery(f"mode must be one of {', '.join(SEARCH_MODES)}, not {value!r}")
    return SEARCH_MODES[value]


def k_arg(value: Any) -> int:
    cfg = current_app.config
    return whole_number(value, "k", 1, cfg["SEARCH_K_MAX"], cfg["SEARCH_K_DEFAULT"])


@bp.get("/health")
def health():
    return jsonify(service().health())


@bp.get("/library")
def library():
    return jsonify(service().info())


@bp.post("/search")
def search():
    """Multipart ``image`` or ``query`` (+ ``k``, ``box``, ``object``) or JSON ``{"text", "k"}``;
    both take ``page``, ``filter`` and ``label`` (lookalike.search.paging)."""
    start = time.perf_counter()
    svc = service()
    query: str | None = None
    box: tuple | None = None
    if request.is_json:
        body = json_body()
        k, (page, filter, label) = k_arg(body.get("k")), page_args(body)
        text = body.get("text")

        def run(depth: int) -> list[searcher.SearchResult]:
            return _text_search(svc, text, depth)

        found = paging.search_page(run, svc.catalog, page, k, filter, label)
    else:
        data, query, name = _query_image()
        k = k_arg(request.form.get("k", request.args.get("k")))
        page, filter, label = page_args(request.form)
        box = parse_box(request.form.get("box"))
        mode = mode_arg(request.form.get("mode", request.args.get("mode")))
        want_object = form_boolean(request.form.get("object"), "object")
        if want_object and box is not None:
            raise BadQuery("'object' finds the region itself: leave out 'box', or 'object'")
        full = want_object or box is not None  # decoded in full, not at reduced size
        with named_query(name):
            pixels = decoded_pixels(data, None if full else svc.searcher.embedder.min_side)
        found_box: list[tuple] = []

        def run(depth: int) -> list[searcher.SearchResult]:
            if want_object:
                results, object_box = _object_search(svc, data, depth, mode)
                found_box[:] = [object_box]
                return results
            return svc.searcher.search(data, depth, box=box, **mode)

        with named_query(name), current_app.extensions["lookalike.decode_budget"].reserve(pixels):
            found = paging.search_page(run, svc.catalog, page, k, filter, label)
        if found_box:
            box = found_box[0]
        elif box is not None:
            # The whole pixels the region search cropped (searcher.validate_box rounds so).
            box = tuple(round(v) for v in box)
    return jsonify(
        {
            "results": svc.scored(found.results),
            "box": list(box) if box is not None else None,
            "query": query,
            "page": page,
            "more": found.more,
            "took_ms": round((time.perf_counter() - start) * 1000, 2),
        }
    )


def page_args(fields: Any) -> tuple[int, str, str | None]:
    """(page, filter, label) of a search: its page from 1 and a browse filter."""
    page = whole_number(fields.get("page"), "page", 1, 10_000, 1)
    filter, label = fields.get("filter") or "all", fields.get("label") or None
    if not isinstance(filter, str) or not (label is None or isinstance(label, str)):
        raise BadQuery("filter and label must be strings")
    paging.check_filter(filter, label)
    return page, filter, label


@contextmanager
def named_query(name: str) -> Iterator[None]:
    """Errors about the query image's bytes (UNNAMED_BYTES: lookalike.indexer.images) name
    it as ``name`` ("the uploaded image"), in the user's terms."""
    try:
        yield
    except UnreadableImage as e:
        if e.path != UNNAMED_BYTES:
            raise
        raise UnreadableImage(name, e.reason) from e


def _query_image() -> tuple[bytes, str | None, str]:
    """The query image of a multipart search (an upload, kept, a kept one by id, or a
    library image by its id), the id it is kept under (None for a library image), and
    what to call it in an error."""
    queries = current_app.extensions["lookalike.queries"]
    upload = request.files.get("image")
    if len(request.files.getlist("image")) > 1:
        raise BadQuery("send one query image: the field 'image' came more than once")
    given = [f for f in ("image", "query", "image_id") if request.form.get(f)]
    if upload is not None:
        given.insert(0, "image")
    if len(set(given)) > 1:
        raise BadQuery(
            "give one of 'image' (an upload), 'query' (a kept query) or 'image_id' (a "
            f"library image), not {' and '.join(sorted(set(given)))}"
        )
    if upload is None and request.form.get("image_id"):
        image_id = whole_number(request.form.get("image_id"), "image_id", 1, MAX_ID, 0)
        media = service().media_file(image_id)  # the file indexed, checked; else 404
        with media.file:
            data = media.file.read()
        sniff_upload(data, current_app.config["UPLOAD_MAX_PIXELS"])
        return data, None, f"library image {image_id}"
    if upload is None:
        key = request.form.get("query")
        if not key:
            raise BadQuery(
                "send the query image as the multipart field 'image', the id of a kept "
                "one as 'query', a library image's id as 'image_id' (or JSON text)"
            )
        return queries.get(key), key, "the query image"
    data = upload.read()
    sniff_upload(data, current_app.config["UPLOAD_MAX_PIXELS"])
    return data, queries.put(data), "the uploaded image"


@bp.get("/queries/<key>")
def query_image(key: str):
    """An uploaded query image the server keeps (see lookalike.webapp.queries)."""
    data = current_app.extensions["lookalike.queries"].get(key)
    with open_image(data) as image:  # sniffed on upload
        mimetype = Image.MIME.get(image.format or "", "application/octet-stream")
    response = current_app.response_class(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _text_search(svc: LibraryService, text: Any, k: int):
    if not isinstance(text, str) or not text.strip():
        raise BadQuery('send {"text": "..."} with a non-empty text, or an image')
    return svc.searcher.search_text(text, k)  # BadQuery, saying why, for a CNN library


def _object_search(svc: LibraryService, data: bytes, k: int, mode: dict[str, bool]):
    """Search with the main object (lookalike.search.localize); returns (results, box)."""
    if not svc.object_search():
        raise BadQuery("object search is not available in this version of Lookalike")
    found = svc.searcher.search_object(data, k, **mode)  # BadQuery for a model without a head
    return found.results, tuple(int(v) for v in found.box)


@bp.get("/images")
def browse_page():
    args = request.args
    cfg = current_app.config
    limit = whole_number(args.get("limit"), "limit", 1, cfg["PAGE_SIZE_MAX"], cfg["PAGE_SIZE"])
    after = whole_number(args.get("after"), "after", 0, MAX_ID, 0)
    label = args.get("label") or None
    return jsonify(browse.browse(service(), args.get("filter", "all"), label, after, limit))


@bp.get("/errors")
def errors():
    cfg = current_app.config
    limit = whole_number(
        request.args.get("limit"), "limit", 1, cfg["PAGE_SIZE_MAX"], cfg["PAGE_SIZE"]
    )
    return jsonify(browse.errors(service(), request.args.get("after", ""), limit))


@bp.get("/images/<int:image_id>")
def image(image_id: int):
    return jsonify(service().image(image_id))


@bp.get("/images/<int:image_id>/similar")
def similar(image_id: int):
    svc = service()
    svc.file_of(image_id)
    results = svc.searcher.similar(image_id, k_arg(request.args.get("k")))
    return jsonify({"results": svc.scored(results)})


@bp.put("/images/<int:image_id>/label")
def set_label(image_id: int):
    return jsonify(service().set_label(image_id, json_body().get("label")))


@bp.delete("/images/<int:image_id>/label")
def remove_label(image_id: int):
    return jsonify(service().remove_label(image_id))


@bp.post("/images/<int:image_id>/tag/accept")
def accept_tag(image_id: int):
    return jsonify(service().accept_tag(image_id))


@bp.delete("/images/<int:image_id>/tag")
def dismiss_tag(image_id: int):
    return jsonify(service().dismiss_tag(image_id))


@bp.get("/labels")
def labels():
    svc = service()
    return jsonify({"labels": svc.label_counts(), "counts": browse.counts(svc)})


@bp.post("/labels")
def label_many():
    body = json_body()
    ids = id_list(body.get("ids"))
    count = service().set_labels(ids, body.get("label"))
    return jsonify({"labelled": count})


@bp.get("/labels/export")
def export_labels():
    svc = service()
    fmt = request.args.get("format", "csv")
    data, media, name = exports.export_download(Library(svc.root, svc.catalog), fmt)
    response = Response(data, content_type=media)  # as given: CSV's names its charset
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/index-job")
def index_job():
    return jsonify(current_app.extensions["lookalike.jobs"].status())


@bp.post("/index-job")
def start_index_job():
    if not current_app.config["ALLOW_INDEX_JOBS"]:
        raise BadQuery("indexing from the web is switched off on this server")
    body = json_body()
    jobs = current_app.extensions["lookalike.jobs"]
    folders = boolean(body.get("labels_from_folders"), "labels_from_folders")
    status = jobs.start(body.get("folder"), folders)
    return jsonify(status), 202
