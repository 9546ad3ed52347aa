"""lookalike tags: predicted tags and labels written where other photo tools read them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike.classifier.xmp import SIDECARS, write_sidecars
from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.library import Library
from lookalike.terminal import shown


@click.group()
def tags() -> None:
    """Keywords for other photo tools: XMP sidecars of labels and predicted tags."""


@tags.command("write-xmp")
@library_option
@click.option("--labels", "with_labels", is_flag=True, help="Human labels (the default).")
@click.option("--tags", "with_tags", is_flag=True, help="Predicted tags (see --min-confidence).")
@click.option(
    "--min-confidence",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Predicted tags below this confidence are left out.",
)
@click.option(
    "--sidecar",
    type=click.Choice(SIDECARS),
    default=SIDECARS[0],
    show_default=True,
    help="NAME.EXT.xmp (digiKam, darktable) or NAME.xmp (Lightroom).",
)
@click.option(
    "--into",
    type=click.Path(file_okay=False),
    default=None,
    help="Write the sidecars under DIR (mirroring the folders) instead of next to the photos.",
)
@json_option
def write_xmp(library, with_labels, with_tags, min_confidence, sidecar, into, as_json):
    """Write keywords into XMP sidecars (dc:subject; lr:hierarchicalSubject for a/b).

    An existing sidecar is merged: what other tools wrote in it stays, and keywords
    already there are not repeated. A sidecar that is not valid XML is left alone
    and reported (exit 1). Image files are never modified.
    """
    with_labels = with_labels or not with_tags
    keywords: dict[str, list[str]] = {}
    with Library.open(library) as lib:
        if with_labels:
            for row in lib.catalog.label_rows():
                keywords.setdefault(row.path, []).append(row.label)
        if with_tags:
            for tag in lib.catalog.tag_rows():
                if tag.label is not None and tag.confidence >= min_confidence:
                    keywords.setdefault(tag.path, []).append(tag.label)
    report = write_sidecars(keywords, sidecar, Path(into).absolute() if into else None)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        for path, why in report.left_alone:
            click.echo(f"left alone {shown(path)}: {shown(why)}", err=True)
        click.echo(
            f"{len(report.created)} sidecars written, {len(report.merged)} merged, "
            f"{len(report.unchanged)} unchanged, {len(report.left_alone)} left alone"
        )
    if report.left_alone:
        click.get_current_context().exit(1)
