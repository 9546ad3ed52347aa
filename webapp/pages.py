"""HTML pages. They are shells: the data comes from the JSON API through static/*.js,
so a page and the API never disagree. Errors on these routes get a friendly page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import NotFound

from lookalike.classifier.tagging.tagger import HEADS
from lookalike.search.copy_groups import DEFAULT_CANDIDATE_THRESHOLD
from lookalike.webapp.services import LibraryService

bp = Blueprint("pages", __name__)


def _service() -> LibraryService:
    return current_app.extensions["lookalike"]


@bp.get("/")
def search_page():
    svc = _service()
    return render_template(
        "search.html",
        page="search",
        text_search=svc.text_search(),
        object_search=svc.object_search(),
        robust_search=svc.searcher.rerank and svc.searcher.multiview,
        health=svc.health(),
        counts=svc.catalog.image_counts(),
        classes=len(svc.catalog.label_counts()),
    )


@bp.get("/images/<int:image_id>")
def image_page(image_id: int):
    svc = _service()
    svc.file_of(image_id)  # 404 page for an unknown id
    return render_template("image.html", page="browse", image_id=image_id)


@bp.get("/library")
def browse_page():
    return render_template(
        "browse.html", page="browse", allow_jobs=current_app.config["ALLOW_INDEX_JOBS"]
    )


@bp.get("/clusters")
def clusters_page():
    return render_template("clusters.html", page="clusters")


@bp.get("/duplicates")
def duplicates_page():
    return render_template(
        "duplicates.html", page="duplicates", threshold=DEFAULT_CANDIDATE_THRESHOLD
    )


@bp.get("/evaluation")
def evaluation_page():
    return render_template("evaluation.html", page="evaluation", heads=HEADS)


REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


# Added to the head of a report made before the report had them (classifier/tagging/
# report.py), as served: phones lay it out at their width, and a table wider than the
# screen scrolls in its own box rather than widening the page.
REPORT_MOBILE_HEAD = (
    "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    "<style>table{display:block;overflow-x:auto;max-width:100%}"
    ".pair{flex-wrap:wrap}</style>"
)


# Added to every report as served: a long label (up to 100 characters) wraps, in its
# table cell too, so the figures' columns stay in view (the coverage table's last ones)
# and no line widens the page.
REPORT_LABEL_STYLE = (
    "<style>body{overflow-wrap:break-word}li,.pair>*{min-width:0;overflow-wrap:anywhere}"
    "td.l{overflow-wrap:anywhere;min-width:6em;max-width:24em}</style>"
)


def mobile_report(html: str) -> str:
    """The report with REPORT_MOBILE_HEAD at the start of its head (once), and
    REPORT_LABEL_STYLE at its end."""
    if "</head>" in html and REPORT_LABEL_STYLE not in html:
        html = html.replace("</head>", REPORT_LABEL_STYLE + "</head>", 1)
    if "name='viewport'" in html or 'name="viewport"' in html or "<head>" not in html:
        return html
    return html.replace("<head>", "<head>" + REPORT_MOBILE_HEAD, 1)


@bp.get("/evaluation/report")
def evaluation_report():
    """The last evaluation's self-contained HTML report (inline styles, data: images)."""
    html = current_app.extensions["lookalike.review"].evaluations.report_html
    if html is None:
        raise NotFound("no evaluation report yet: run the evaluation first")
    response = current_app.make_response(mobile_report(html))
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    if request.args.get("download"):
        response.headers["Content-Disposition"] = 'attachment; filename="lookalike-evaluation.html"'
    return response
