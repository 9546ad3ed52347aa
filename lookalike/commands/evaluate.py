"""lookalike evaluate: cross-validate every tagging head on the library's human labels."""

from __future__ import annotations

import json
import os

import click

from lookalike.classifier.tagging.coverage import Coverage
from lookalike.classifier.tagging.report import render_html
from lookalike.classifier.tagging.tagger import HEADS
from lookalike.classifier.tagging.validation import evaluate_library, store_summary
from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.library import Library

COVERAGE_ROWS = 10  # labels listed (most unknown images first); --json has all


def _heads(value: str) -> tuple[str, ...]:
    heads = tuple(dict.fromkeys(h.strip() for h in value.split(",") if h.strip()))  # once each
    bad = [h for h in heads if h not in HEADS]
    if bad or not heads:
        raise click.BadParameter(
            f"unknown head {', '.join(bad) or value!r}; use a comma list of " + ",".join(HEADS),
            param_hint="--heads",
        )
    return heads


@click.command()
@library_option
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50))
@click.option(
    "--heads",
    "heads_text",
    default=",".join(HEADS),
    show_default=True,
    help="Heads to compare, comma-separated.",
)
@click.option(
    "--report",
    "report_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write a self-contained HTML report (plots, confused pairs with thumbnails).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@json_option
def evaluate(library, folds, heads_text, report_path, seed, as_json):
    """Which head tags this library best? Stratified K-fold CV over the human labels.

    For each head: accuracy, macro-F1, per-class precision/recall, confusion
    matrix, a learning curve (1, 2, 5, 10, 20 labels per class) and open-set
    figures (whole classes hidden: AUROC of the confidence, known-class images
    tagged right, hidden-class images left unknown). Classes with fewer labels
    than folds are tested in fewer folds; one-label classes only train. On two or
    more cores the heads run two at a time (half of them in a worker process).

    Then the coverage on the unlabelled library, per label: images labelled by a
    person, tagged by the last tag run, and left unknown with this label's class
    nearest (most unknown first; an under-tagged class shows at once).
    """
    heads = _heads(heads_text)

    def progress(name: str, step: str) -> None:
        if step == "starting" and not as_json:
            click.echo(f"evaluating {name} ...", err=True)

    with Library.open(library, readonly=False) as lib:
        result = evaluate_library(lib, heads=heads, folds=folds, seed=seed, progress=progress)
        store_summary(lib, result)
    if report_path:
        _write(report_path, render_html(result))
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    for note in result.notes:
        click.echo(f"class {result.classes[note.cls]!r}: {note.note}")
    click.echo(
        f"{result.labels} labels in {len(result.classes)} classes, {folds} folds\n"
        f"{'head':<8} {'accuracy':>8} {'macro-F1':>8} {'AUROC':>6} {'known':>6} "
        f"{'unknown':>7} {'ECE':>6} {'seconds':>7}"
    )
    for name, r in result.heads.items():
        o = r.open_set
        click.echo(
            f"{name:<8} {r.accuracy:>8.3f} {r.macro_f1:>8.3f} {_f(o.auroc):>6} "
            f"{_f(o.known_accuracy):>6} {_f(o.novel_unknown):>7} "
            f"{_f(o.calibration_error):>6} {r.seconds:>7.1f}"
        )
    click.echo(
        "known: known-class images tagged right; unknown: images of hidden classes left "
        "unknown (open-set rounds)"
    )
    click.echo(f"best accuracy: {result.best_head}")
    if result.coverage is not None:
        _echo_coverage(result.coverage)
    if report_path:
        click.echo(f"report: {report_path}")


def _echo_coverage(coverage: Coverage, rows: int = COVERAGE_ROWS) -> None:
    when = "" if coverage.tagged_at is not None else " (no tag run yet: lookalike tag)"
    click.echo(
        f"coverage: {coverage.unknown} of {coverage.images} images have no label or tag{when}"
    )
    click.echo(f"{'label':<24} {'human':>6} {'tagged':>7} {'unknown nearest':>15} {'share':>6}")
    for c in coverage.labels[:rows]:
        click.echo(
            f"{c.label:<24} {c.human:>6} {c.tagged:>7} {c.unknown_nearest:>15} "
            f"{c.unknown_share:>6.0%}"
        )
    if len(coverage.labels) > rows:
        click.echo(f"... {len(coverage.labels) - rows} more labels in --json and the report")


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
