"""One error handler for the whole app: JSON for the API, a friendly page elsewhere.

Domain errors map to statuses by class (bad query 400, a read-only library 403, not
found 404, busy 409, model or optional extra unavailable 503); anything unexpected is
logged with its traceback and answered 500 with a short message, never the traceback
itself. Domain errors whose message tells a terminal user what to type (``lookalike
clusters``, ``--exclude``) are worded again from their data for the web
(``WEB_MESSAGES``): what to do on the pages, and the API's own field names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from lookalike.classifier.boxes import ImageChanged, UnknownBox, UnknownImage
from lookalike.classifier.clustering.errors import (
    ClusterNotFound,
    NotAMember,
    NothingToCluster,
    UnknownLabel,
)
from lookalike.classifier.labels import UnknownImages
from lookalike.classifier.tagging.tagger import NotEnoughLabels
from lookalike.indexer.errors import (
    BadQuery,
    LibraryBusy,
    LibraryNotFound,
    LibraryReadOnly,
    LookalikeError,
    MissingExtra,
    ModelMismatch,
    ModelUnavailable,
    UnreadableImage,
)
from lookalike.webapp.budget import ServerBusy
from lookalike.webapp.services import INTERNAL_ERROR, NotFound

log = logging.getLogger(__name__)

STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (UnknownImage, 404),
    (UnknownBox, 404),
    (ImageChanged, 409),
    (BadQuery, 400),
    (UnreadableImage, 400),
    (LibraryBusy, 409),
    (LibraryReadOnly, 403),
    (ServerBusy, 503),
    (ModelMismatch, 409),
    (LibraryNotFound, 503),
    (ModelUnavailable, 503),
    (MissingExtra, 503),
    (LookalikeError, 400),
]


def _cluster_not_found(e: ClusterNotFound) -> str:
    if e.status == "gone":
        return (
            f"cluster {e.cluster_id} is gone: the clusters were computed again (the "
            "library or its labels changed, or another smallest size) and replaced it; "
            "reload the Clusters page for the current ones"
        )
    return f"no cluster {e.cluster_id}; the Clusters page lists the current ones"


def _nothing_to_cluster(e: NothingToCluster) -> str:
    if e.images == 0:
        return "the library has no images; index a folder first"
    return str(e)  # says nothing of commands


def _unknown_label(e: UnknownLabel) -> str:
    return f"no label {e.label!r} in the library; to create it, use Accept as new class"


def _not_a_member(e: NotAMember) -> str:
    return f"exclude: {e.path} is not a member of cluster {e.cluster_id}"


def _unknown_images(e: UnknownImages) -> str:
    return e.worded("index its folder again", " (removed, or never indexed)")


def _not_enough_labels(e: NotEnoughLabels) -> str:
    if e.images == 0:
        return "the library has no images; index a folder first"
    return (
        f"tagging needs labelled images of at least two classes, the library has "
        f"{e.classes}; label some first (on the Label next page, an image's page, or by "
        f"selecting images on the Library page)"
    )


WEB_MESSAGES: list[tuple[type[Exception], Callable[[Any], str]]] = [
    (ClusterNotFound, _cluster_not_found),
    (NothingToCluster, _nothing_to_cluster),
    (UnknownLabel, _unknown_label),
    (NotAMember, _not_a_member),
    (UnknownImages, _unknown_images),
    (NotEnoughLabels, _not_enough_labels),
]


def web_message(error: Exception) -> str:
    """The error's message for a web page or an API client (WEB_MESSAGES, else its own)."""
    for cls, words in WEB_MESSAGES:
        if isinstance(error, cls):
            return words(error)
    return str(error)


# Messages for HTTP errors that werkzeug words for developers.
FRIENDLY = {
    400: "The request was not understood.",
    403: "This request was refused.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The upload is too large.",
    500: "Something went wrong on the server.",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(message: str, status: int):
    if wants_json():
        response = jsonify({"error": message})
        response.status_code = status
        return response
    html = render_template("error.html", status=status, message=message)
    return html, status


def status_of(error: LookalikeError) -> int:
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return 400


def register(app: Flask) -> None:
    @app.errorhandler(LookalikeError)
    def domain_error(error: LookalikeError):
        return error_response(web_message(error), status_of(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = "the upload is too large" + (
                f" (limit {limit / 1024 / 1024:.0f} MB)" if limit else ""
            )
        elif error.description and error.description != type(error).description:
            message = error.description  # raised with a message of ours
        else:
            message = FRIENDLY.get(status, error.name)
        response = error_response(message, status)
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response = app.make_response(response)
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(INTERNAL_ERROR, 500)
