"""A self-contained HTML validation report: plots and thumbnails embedded, no network.

Charts are inline SVG (``plots``) embedded as base64 data URIs; thumbnails of the
most confused pairs are embedded as base64 JPEG. Every text from the library (its
path, labels, file names, head names) is HTML-escaped here, and in the charts by
``plots`` (SVG text): a folder named ``<img src=x onerror=...>`` shows as text.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import numpy as np

from lookalike.classifier.tagging import plots
from lookalike.classifier.tagging.coverage import Coverage
from lookalike.classifier.tagging.validation import Evaluation, HeadFigures
from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import load_image

HEAD_TITLES = {
    "proto": "Prototypes (closeness to the labels)",
    "knn": "kNN (label propagation)",
    "linear": "Logistic regression",
    "svm": "Linear SVM",
    "mlp": "MLP",
}

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 12px;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #eee;
text-align:right}th{background:#f6f6f6}td.l,th.l{text-align:left}
img.plot{max-width:100%}.pair{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
table{display:block;overflow-x:auto;max-width:100%}
.pair img{height:96px;border-radius:4px}.muted{color:#777}.best{font-weight:bold}
.wide{overflow-x:auto;max-width:100%}
"""


def render_html(result: Evaluation, thumbnail: Callable[[str], str | None] | None = None) -> str:
    """The report for ``lookalike.classifier.tagging.validation.evaluate_library``'s result.

    Args:
        result: the evaluation (its ``paths``: id -> path for the examples).
        thumbnail: path -> data URI of a small image (default: read the file);
            return None to leave an image out.
    """
    thumbnail = thumbnail or thumbnail_data_uri
    classes = result.classes
    heads = result.heads
    best = result.best_head
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>Lookalike validation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Lookalike validation report</h1>",
        f"<p>{html.escape(str(result.library or ''))}: {result.labels} labelled images in "
        f"{len(classes)} classes, {result.images} images in all; "
        f"{result.folds}-fold stratified cross-validation.</p>",
        _summary_table(heads, best),
        _coverage_section(result.coverage),
        "<h2>Which head?</h2>",
        _img(_plot_summary(heads)),
        "<h2>Learning curve</h2>",
        "<p>Accuracy with this many labels per class (held-out folds).</p>",
        _img(_plot_learning_curve(heads)),
    ]
    if result.notes:
        parts.append("<h2>Small classes</h2><ul>")
        parts.extend(
            f"<li>{html.escape(classes[n.cls])}: {html.escape(n.note)}</li>" for n in result.notes
        )
        parts.append("</ul>")
    for name in sorted(heads, key=lambda h: (h != best, h)):
        parts.append(_head_section(name, heads[name], classes, result.paths, thumbnail))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_table(heads: dict[str, HeadFigures], best: str | None) -> str:
    rows = [
        "<div class='wide'><table><tr><th class='l'>head</th><th>accuracy</th><th>macro-F1</th>"
        "<th>open-set AUROC</th><th>known tagged right</th><th>novel left unknown</th>"
        "<th>calibration error</th><th>seconds</th></tr>"
    ]
    for name, r in heads.items():
        o = r.open_set
        cls = " class='best'" if name == best else ""
        rows.append(
            f"<tr{cls}><td class='l'>{_title(name)}</td>"
            f"<td>{_pct(r.accuracy)}</td><td>{r.macro_f1:.3f}</td>"
            f"<td>{_num(o.auroc)}</td><td>{_pct(o.known_accuracy)}</td>"
            f"<td>{_pct(o.novel_unknown)}</td><td>{_num(o.calibration_error)}</td>"
            f"<td>{r.seconds:.1f}</td></tr>"
        )
    rows.append("</table></div>")
    return "\n".join(rows)


def _coverage_section(coverage: Coverage | None) -> str:
    if coverage is None or not coverage.labels:
        return ""
    when = "after the last tag run" if coverage.tagged_at is not None else "no tag run yet"
    parts = [
        "<h2>Coverage on the unlabelled library</h2>",
        f"<p>{coverage.unknown} of {coverage.images} images have no label or tag "
        f"({html.escape(when)}). Per label: the images a person labelled, those the "
        "last tag run tagged, and the unknown ones whose nearest class is this label; "
        "many unknown against few tagged: the class is under-tagged (label a few of "
        "them and tag again). Share: unknown among all three. Most unknown first.</p>",
        "<div class='wide'><table><tr><th class='l'>label</th><th>human</th>"
        "<th>tagged</th><th>unknown nearest</th><th>share</th></tr>",
    ]
    for c in coverage.labels:
        parts.append(
            f"<tr><td class='l'>{html.escape(c.label)}</td><td>{c.human}</td>"
            f"<td>{c.tagged}</td><td>{c.unknown_nearest}</td>"
            f"<td>{_pct(c.unknown_share)}</td></tr>"
        )
    parts.append("</table></div>")
    return "\n".join(parts)


def _head_section(
    name: str,
    r: HeadFigures,
    classes: list[str],
    paths: dict[int, str],
    thumbnail: Callable[[str], str | None],
) -> str:
    parts = [f"<h2>{_title(name)}</h2>"]
    parts.append(_img(_plot_confusion(np.array(r.confusion), classes)))
    if r.open_set.reliability:
        parts.append(_img(_plot_reliability(r.open_set.reliability, name)))
    if r.confused_pairs:
        parts.append("<h3>Most confused pairs</h3>")
        for pair in r.confused_pairs:
            imgs = "".join(
                f"<img src='{uri}' title='{html.escape(paths.get(i, ''))}'>"
                for i in pair.examples
                if (uri := thumbnail(paths.get(i, ""))) is not None
            )
            parts.append(
                f"<div class='pair'><div><b>{html.escape(classes[pair.true])}</b> taken for "
                f"<b>{html.escape(classes[pair.predicted])}</b> "
                f"<span class='muted'>({pair.count}x)</span></div>{imgs}</div>"
            )
    parts.append("<h3>Per class (worst first)</h3><table><tr><th class='l'>class</th>")
    parts.append("<th>precision</th><th>recall</th><th>F1</th><th>labels tested</th></tr>")
    for c in sorted(r.per_class, key=lambda c: (c.f1, classes[c.cls])):
        if c.support == 0:
            continue
        parts.append(
            f"<tr><td class='l'>{html.escape(classes[c.cls])}</td>"
            f"<td>{c.precision:.2f}</td><td>{c.recall:.2f}</td><td>{c.f1:.2f}</td>"
            f"<td>{c.support}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _title(head: str) -> str:
    return html.escape(HEAD_TITLES.get(head, head))


def _img(uri: str) -> str:
    return f"<img class='plot' src='{uri}'>"


def _plot_summary(heads: dict[str, HeadFigures]) -> str:
    metrics: list[tuple[str, Callable[[HeadFigures], float | None]]] = [
        ("accuracy", lambda r: r.accuracy),
        ("macro-F1", lambda r: r.macro_f1),
        ("open-set AUROC", lambda r: r.open_set.auroc),
        ("known tagged right", lambda r: r.open_set.known_accuracy),
        ("novel unknown", lambda r: r.open_set.novel_unknown),
    ]
    series = {
        HEAD_TITLES.get(name, name): [get(r) or 0.0 for _, get in metrics]
        for name, r in heads.items()
    }
    return plots.data_uri(plots.grouped_bars([m for m, _ in metrics], series, (0.5, 1.0)))


def _plot_learning_curve(heads: dict[str, HeadFigures]) -> str:
    series = {
        HEAD_TITLES.get(name, name): [(p.labels_per_class, p.accuracy) for p in r.learning_curve]
        for name, r in heads.items()
    }
    ns = sorted({n for points in series.values() for n, _ in points})
    return plots.data_uri(plots.lines(series, ns, "labels per class", "accuracy"))


def _plot_confusion(confusion: np.ndarray, classes: list[str]) -> str:
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    svg = plots.heatmap(share.tolist(), confusion.tolist(), classes, "share of the true class")
    return plots.data_uri(svg)


def _plot_reliability(bins: list[dict], name: str) -> str:
    points = [(b["confidence"], b["right"], b["count"]) for b in bins if b["count"]]
    title = f"Is the confidence honest? ({name}, held-out classes)"
    return plots.data_uri(plots.reliability(points, title))


def thumbnail_data_uri(path: str, size: int = 128) -> str | None:
    """A small JPEG of the image as a data URI, or None when it cannot be read."""
    if not path:
        return None
    try:
        image = load_image(path, min_side=size).image
    except (UnreadableImage, OSError):
        return None
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"
