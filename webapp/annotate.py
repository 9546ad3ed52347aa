"""Annotation routes: bulk label edits with undo, all ids matching a filter, the
label-next queue (its API and its page).

A bulk edit answers with an undo token; ``POST /api/labels/undo`` with the token
puts the labels and tags of the edit's images back, except those whose label was
changed since (they are left as they are and listed in ``changed_since``). The server keeps the last
``UNDO_KEEP`` edits' tokens in memory (a restart forgets them).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from lookalike.classifier import bulk_edit, label_queue
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import BROWSE_FILTERS, MAX_ID
from lookalike.indexer.store.library import Library
from lookalike.webapp import queue_view
from lookalike.webapp.inputs import json_body, spelled, whole_number
from lookalike.webapp.services import LibraryService

bp = Blueprint("annotate", __name__)

UNDO_KEEP = 50
MAX_BULK_IDS = 100_000
# Ids a label-next request may skip: a page sends its most recent skips only, so the
# URL stays a few kilobytes; older skips come back into its queue.
MAX_SKIP = 1000


class UndoStore:
    """The ``Before`` of recent bulk edits, by token (the oldest dropped first)."""

    def __init__(self, keep: int = UNDO_KEEP) -> None:
        self.keep = keep
        self._edits: OrderedDict[str, bulk_edit.Before] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, before: bulk_edit.Before) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._edits[token] = before
            while len(self._edits) > self.keep:
                self._edits.popitem(last=False)
        return token

    def take(self, token: Any) -> bulk_edit.Before:
        with self._lock:
            before = self._edits.pop(token, None) if isinstance(token, str) else None
        if before is None:
            raise BadQuery("unknown or expired undo token (each edit can be undone once)")
        return before


def service() -> LibraryService:
    return current_app.extensions["lookalike"]


def undo_store() -> UndoStore:
    return current_app.extensions["lookalike.undo"]


def ids_arg(value: Any) -> list[int]:
    """A JSON list of image ids: whole numbers (not booleans), at least one."""
    if not isinstance(value, list) or not value:
        raise BadQuery('send "ids": a non-empty list of image ids')
    if len(value) > MAX_BULK_IDS:
        raise BadQuery(f"at most {MAX_BULK_IDS} ids per request, not {len(value)}")
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise BadQuery(f"image ids must be whole numbers, not {spelled(bad[0])}")
    out_of_range = [v for v in value if not 0 < v < 2**63]
    if out_of_range:
        raise BadQuery(f"not in the library: image id {out_of_range[0]}; nothing was changed")
    return value


@bp.post("/api/labels/bulk")
def bulk():
    """``{"action": "label"|"relabel"|"remove"|"accept", "ids": [...], "label": "..."}``."""
    body = json_body()
    action, label = body.get("action"), body.get("label")
    if not isinstance(action, str):
        raise BadQuery(f'send "action": one of {", ".join(bulk_edit.ACTIONS)}')
    if label is not None and not isinstance(label, str):
        raise BadQuery("a label must be a string")
    if action in ("label", "relabel") and label is None:
        # Said here: the library's own message ("label needs a label") reads oddly.
        raise BadQuery(f'send "label": the label to give the images (action "{action}")')
    ids = ids_arg(body.get("ids"))
    with service().writable() as library:
        result = bulk_edit.apply(library, action, ids, label)
    return jsonify(
        {
            "action": result.action,
            "images": len(result.before.ids),
            "changed": result.changed,
            "skipped": result.skipped,
            "undo": undo_store().put(result.before),
        }
    )


@bp.post("/api/labels/undo")
def undo():
    before = undo_store().take(json_body().get("undo"))
    with service().writable() as library:
        done = bulk_edit.undo(library, before)
    return jsonify({"restored": len(done.restored), "changed_since": done.changed_since})


@bp.get("/api/images/ids")
def matching_ids():
    """Every id a browse filter holds (the grids' "select all matching")."""
    filter = request.args.get("filter", "all")
    if filter not in BROWSE_FILTERS or filter == "errors":
        raise BadQuery(f"unknown filter {filter!r}")
    label = request.args.get("label") or None
    ids = service().catalog.browse_ids(filter, label, 0, 2**62)
    return jsonify({"ids": ids})


def skip_arg(value: str | None) -> set[int]:
    """The ``skip`` of a label-next request: image ids separated by commas (none: empty)."""
    if value is None or not value.strip():
        return set()
    parts = value.split(",")
    if len(parts) > MAX_SKIP:
        raise BadQuery(f"skip takes at most {MAX_SKIP} image ids, not {len(parts)}")
    ids = set()
    for part in parts:
        text = part.strip()
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
            raise BadQuery(f"skip must be image ids separated by commas, not {part[:40]!r}")
        ids.add(int(text))
    return ids


@bp.get("/api/labels/next")
def label_next():
    """The queue's ``n`` best images, without the ``skip`` ids, with suggestions on one
    measure and why each was picked (queue_view); ``skipped`` says how many of those
    the queue left out (with an empty queue: every unlabelled image left)."""
    n = whole_number(request.args.get("n"), "n", 1, 200, 10)
    skip = skip_arg(request.args.get("skip"))
    svc = service()
    # Asked for n more than are skipped, so n are left once they are taken out.
    queue = label_queue.next_images(Library(svc.root, svc.catalog), n + len(skip))
    items = [item for item in queue.items if item.id not in skip]
    return jsonify(
        {
            "queue": queue_view.page_items(svc.catalog, items[:n]),
            "skipped": len(queue.items) - len(items),
        }
    )


@bp.get("/label")
def label_page():
    return render_template("label.html", page="label")
