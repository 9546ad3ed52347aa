"""Lookalike's web front end: pages and a JSON API over one library.

``create_app`` is the application factory; ``lookalike serve`` runs it on waitress.
The library packages never import Flask: this package is a thin layer over them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from lookalike.indexer.store.library import default_library_dir
from lookalike.webapp import (
    annotate,
    api,
    boxes,
    duplicates,
    errors,
    library_map,
    media,
    pages,
    review,
    security,
)
from lookalike.webapp.budget import PixelBudget
from lookalike.webapp.inputs import CatalogIdConverter, StrictJSONProvider
from lookalike.webapp.jobs import IndexJobs
from lookalike.webapp.queries import QueryStore
from lookalike.webapp.services import LibraryService
from lookalike.webapp.settings import DEFAULTS
from lookalike.webapp.thumbnails import ThumbnailCache


def create_app(
    library_dir: str | Path | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    """Build the web app over the library at ``library_dir``.

    Args:
        library_dir: the library directory (default: $LOOKALIKE_LIBRARY or the
            per-user default, as for the CLI).
        test_config: settings that override the defaults (see webapp/settings.py).

    Returns:
        The Flask app. The model loads on the first query (or now with WARM_UP).

    Raises:
        LibraryNotFound: no library at that directory.
    """
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config["JSON_SORT_KEYS"] = False
    if test_config:
        app.config.update(test_config)
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    app.url_map.converters["int"] = CatalogIdConverter  # before any route is added

    root = Path(library_dir or default_library_dir()).expanduser()
    svc = LibraryService(
        root,
        embedder=app.config["EMBEDDER"],
        embed_threads=app.config["EMBED_THREADS"],
        rerank=app.config["SEARCH_RERANK"],
        multiview=app.config["SEARCH_MULTIVIEW"],
    )
    thumbs = Path(app.config["THUMBNAIL_DIR"] or svc.root / "thumbnails")
    app.extensions["lookalike"] = svc
    budget = PixelBudget(app.config["DECODE_BUDGET_PIXELS"], app.config["DECODE_WAIT_S"])
    app.extensions["lookalike.decode_budget"] = budget
    app.extensions["lookalike.thumbnails"] = ThumbnailCache(thumbs, budget)
    app.extensions["lookalike.jobs"] = IndexJobs(svc)
    app.extensions["lookalike.review"] = review.ReviewService(svc)
    app.extensions["lookalike.map"] = library_map.MapCache(svc)
    app.extensions["lookalike.undo"] = annotate.UndoStore()
    app.extensions["lookalike.queries"] = QueryStore(
        app.config["QUERY_KEEP"], app.config["QUERY_KEEP_MB"] * 1024 * 1024
    )
    app.extensions["lookalike.duplicates"] = duplicates.DuplicateReview(svc)

    security.register(app)
    errors.register(app)
    blueprints = (api.bp, annotate.bp, boxes.bp, media.bp, review.bp, duplicates.bp, pages.bp)
    for blueprint in (*blueprints, library_map.bp):
        app.register_blueprint(blueprint)
    if app.config["WARM_UP"]:
        svc.warm_up()
    return app
