"""Routes for duplicates, and for hiding or removing an image from the library.

``DuplicateReview`` is the thin layer between these routes and the library packages:
groups come from ``Searcher.copy_groups`` (lookalike.search.copy_groups, as
`lookalike duplicates`), with the stored pair verdicts and hashes making every pass
after the first quick; marks (hidden, kept, removed) are written through
lookalike.indexer.store.image_marks. Removing an image takes it out of the catalog and
the index, never off the disk, and indexing its folder again does not bring it back.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store import image_marks
from lookalike.indexer.store.library import Library
from lookalike.search.copy_groups import DEFAULT_CANDIDATE_THRESHOLD, CopyGroup
from lookalike.search.duplicates import check_threshold
from lookalike.webapp.inputs import id_list, json_body
from lookalike.webapp.services import LibraryService, NotFound

bp = Blueprint("duplicates", __name__, url_prefix="/api")


class DuplicateReview:
    """Duplicate groups and image marks for one library (see module docstring)."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()  # one pass at a time: they share the verdict table

    def groups(self, threshold: float) -> dict[str, Any]:
        with self._lock:
            found = self.service.searcher.copy_groups(threshold)
        kept = image_marks.kept_ids(self.service.catalog)
        return {
            "threshold": threshold,
            "candidates": found.candidates,
            "newly_verified": found.verified,
            "skipped": found.skipped,
            "groups": [self._group(g, kept) for g in found.groups],
        }

    def _group(self, group: CopyGroup, kept: set[int]) -> dict[str, Any]:
        cards = self.service.cards(group.ids)
        members = []
        for m in group.members:
            card = cards.get(m.id) or {}
            members.append(
                {**card, **m._asdict(), "score": round(m.score, 6), "marked": m.id in kept}
            )
        return {"size": group.size, "keep": group.keep, "members": members}

    def keep(self, image_id: int, group: Any) -> dict[str, Any]:
        """Mark the image as the one to keep of ``group``: its group's member ids, the
        image among them, every one in the library (else 400, saying which)."""
        ids = id_list(group, "group")
        self.service.file_of(image_id)
        if image_id not in ids:
            raise BadQuery(f"the group must include image {image_id} itself, the one to keep")
        known = self.service.catalog.existing_ids(ids)
        missing = sorted(set(ids) - known)
        if missing:
            listed = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise BadQuery(f"the group has ids of no image in the library: {listed}")
        with self.service.writing() as (_catalog, conn):
            image_marks.set_kept(conn, image_id, ids)
        return {"id": image_id, "keep": True}

    def hide(self, image_id: int, hidden: Any) -> dict[str, Any]:
        if not isinstance(hidden, bool):
            raise BadQuery('send {"hidden": true} or {"hidden": false}')
        self.service.file_of(image_id)
        with self.service.writing() as (_catalog, conn):
            image_marks.set_hidden(conn, image_id, hidden)
        return {"id": image_id, "hidden": hidden}

    def remove(self, image_id: int) -> dict[str, Any]:
        """Take an image out of the library (the file stays on disk)."""
        path, _digest = self.service.file_of(image_id)
        with self.service.writer() as catalog:
            library = Library(self.service.root, catalog)
            with library.locked(), catalog.transaction() as conn:
                if catalog.image(image_id) is None:
                    raise NotFound("image", image_id)
                image_marks.record_removed(conn, path)
                catalog.remove_images(conn, [image_id])
        return {"id": image_id, "removed": True, "path": path}


def _review() -> DuplicateReview:
    return current_app.extensions["lookalike.duplicates"]


def threshold_arg(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_CANDIDATE_THRESHOLD
    try:
        number = float(value)
    except ValueError:
        raise BadQuery(f"threshold must be a number in (0, 1], not {value!r}") from None
    return check_threshold(number)


@bp.get("/duplicates")
def duplicates():
    return jsonify(_review().groups(threshold_arg(request.args.get("threshold"))))


@bp.post("/images/<int:image_id>/keep")
def keep(image_id: int):
    return jsonify(_review().keep(image_id, json_body().get("group")))


@bp.put("/images/<int:image_id>/hidden")
def hide(image_id: int):
    return jsonify(_review().hide(image_id, json_body().get("hidden")))


@bp.delete("/images/<int:image_id>")
def remove(image_id: int):
    return jsonify(_review().remove(image_id))
