"""The library map page and its API: ``/map``, ``/api/map`` and ``/api/map/points``.

``/api/map`` (JSON) says how many points there are and what their colours mean;
``/api/map/points`` is the points themselves in a compact binary form that the page
reads into typed arrays (10 bytes a point: 1 MB at 100k images), little-endian::

    uint32 n | uint32 id[n] | uint16 x[n] | uint16 y[n] | uint16 category[n]

x and y are the map coordinates in [0, 1] scaled to 0..65535 (y grows downwards);
category 0 is "none" (no label, unknown, in no cluster), i >= 1 is legend[i - 1].
The map is computed once per change of the library (see
``lookalike.classifier.clustering.library_map``) and kept by the server.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, render_template, request

from lookalike.classifier.clustering import library_map
from lookalike.classifier.clustering.library_map import COLOUR_BY, ColourBy, Colours
from lookalike.classifier.clustering.projection import Projection
from lookalike.indexer.errors import BadQuery
from lookalike.webapp.services import LibraryService

bp = Blueprint("library_map", __name__)


class MapCache:
    """The server's current map: computed by one request at a time, reused by all."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._key: str | None = None
        self._map: Projection | None = None

    def current(self) -> Projection:
        with self._lock:
            library = self.service.library
            key = library_map.map_key(library)
            if self._map is None or key != self._key:
                self._map = library_map.library_map(library, previous=self._map)
                self._key = key
            return self._map

    def colours(self, by: ColourBy) -> tuple[Projection, Colours]:
        found = self.current()
        return found, library_map.colours(self.service.library, found.ids, by)


def _cache() -> MapCache:
    return current_app.extensions["lookalike.map"]


def _colour_by() -> ColourBy:
    value = request.args.get("colour", "tag")
    for by in COLOUR_BY:
        if value == by:
            return by
    raise BadQuery(f"colour must be one of {', '.join(COLOUR_BY)}, not {value!r}")


@bp.get("/map")
def map_page():
    return render_template("map.html", page="map")


@bp.get("/api/map")
def map_info():
    found, colours = _cache().colours(_colour_by())
    body: dict[str, Any] = {
        "count": len(found.ids),
        "colour": colours.by,
        "none": {"name": colours.none_name, "count": colours.none_count},
        "legend": [{"name": name, "count": count} for name, count in colours.legend],
        "points": f"/api/map/points?colour={colours.by}",
    }
    return jsonify(body)


@bp.get("/api/map/points")
def map_points():
    found, colours = _cache().colours(_colour_by())
    scaled = np.clip(np.rint(found.xy * 65535), 0, 65535).astype("<u2")
    parts = [
        np.array([len(found.ids)], "<u4").tobytes(),
        found.ids.astype("<u4").tobytes(),
        np.ascontiguousarray(scaled[:, 0]).tobytes(),
        np.ascontiguousarray(scaled[:, 1]).tobytes(),
        colours.codes.astype("<u2").tobytes(),
    ]
    response = Response(b"".join(parts), mimetype="application/octet-stream")
    response.cache_control.no_cache = True
    return response
