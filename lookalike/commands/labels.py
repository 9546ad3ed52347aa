"""lookalike labels: human labels -- import and export, set, remove, list, next."""

from __future__ import annotations

import io
import json
import os
import sys

import click

from lookalike.classifier import boxes
from lookalike.classifier.exports import FORMATS, import_labels, write_coco, write_yolo
from lookalike.classifier.label_queue import next_images
from lookalike.classifier.labels import (
    check_label,
    export_rows,
    label_counts,
    remove_labels,
    resolve_paths,
    set_labels,
    write_csv,
)
from lookalike.classifier.tagging.tagger import last_run
from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store import boxes as box_store
from lookalike.indexer.store.library import Library
from lookalike.words import count

SHOW_REJECTED = 50


@click.group()
def labels() -> None:
    """Human labels and boxes: import/export (CSV, COCO, YOLO), set, remove, list, next.

    Labels come from folder names (lookalike index --labels-from-folders), a CSV,
    or by hand; each records its origin and time. `lookalike tag` predicts the
    rest and never overwrites a human label.
    """


@labels.command("import")
@click.argument("file", type=click.Path())
@library_option
@click.option(
    "--strict",
    is_flag=True,
    help="Change nothing when any row is bad (default: take the good rows).",
)
@json_option
def import_(file, library, strict, as_json):
    """Import labels from FILE: a CSV with a header line `path,label`, COCO JSON, or a YOLO folder.

    A YOLO folder (FILE is a directory) is read as `labels export --format yolo`
    writes it: classes.txt, images.txt, labels/ (a row `class 0.5 0.5 1 1` labels
    its image, any other is a box); each bad row is named by its file and row.

    CSV and COCO are told apart by content. Relative paths (a COCO image's file_name)
    are taken relative to the file's folder; other CSV columns are ignored; a COCO
    annotation labels its image when its box is the whole image (or it has none),
    else it is a box of the image (bbox [x, y, width, height] in its pixels; the
    `kind` of Lookalike's own exports says which). Every row or annotation is
    checked first (known path, no duplicate, a usable label, known image and
    category ids, a box inside its image of the library's size); then the good
    ones are written in one transaction, or with --strict nothing at all if any is
    bad. Prints which were taken and which not, with the reason; exits 1 when any
    was not taken.
    """
    with Library.open(library, readonly=False) as lib:
        report = import_labels(lib, file, strict=strict, embedder=lambda: _embedder(lib))
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        for r in report.rejected[:SHOW_REJECTED]:
            click.echo(f"line {r.line}: not taken: {r.reason}: {r.path or '-'}", err=True)
        if len(report.rejected) > SHOW_REJECTED:
            more = len(report.rejected) - SHOW_REJECTED
            click.echo(f"... and {more} more rows not taken (--json lists all)", err=True)
        if report.applied:
            boxes_note = (
                f", {count(report.boxes_new, 'new box')}, {report.boxes_unchanged} already there"
                if report.boxes_new or report.boxes_unchanged
                else ""
            )
            click.echo(
                f"took {len(report.taken)} rows ({report.new} new labels, {report.changed} "
                f"changed, {report.unchanged} unchanged{boxes_note}); "
                f"{len(report.rejected)} rows not taken"
            )
        elif report.rejected and strict:
            click.echo(
                f"nothing imported (--strict): {len(report.rejected)} of "
                f"{len(report.rejected) + len(report.taken)} rows are bad"
            )
        else:
            click.echo(f"nothing imported: no usable rows ({len(report.rejected)} rows not taken)")
    if report.rejected or not report.applied:
        sys.exit(1)


@labels.command()
@click.argument("file", required=False, type=click.Path())
@library_option
@click.option("--tags", is_flag=True, help="Export the predicted tags instead of human labels.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="csv",
    show_default=True,
    help="csv: path,label,origin,at (image labels); coco: one JSON file (labels as "
    "whole-image boxes, and the boxes); yolo: a folder of classes.txt, images.txt, "
    "labels/ and data.yaml.",
)
def export(file, library, tags, fmt):
    """Write the human labels as CSV (path,label,origin,at) to FILE or standard output
    (no FILE, or -), or the labels and boxes as COCO (FILE) or YOLO (FILE is a folder).

    CSV and COCO files import back with `lookalike labels import`.
    """
    if fmt != "csv":
        _export_boxes(file, library, tags, fmt)
        return
    with Library.open(library) as lib:
        rows = export_rows(lib, tags=tags)
    if file is None or file == "-":
        write_csv(rows, sys.stdout, tags=tags)
        return
    buf = io.StringIO()
    write_csv(rows, buf, tags=tags)
    _write_atomically(file, buf.getvalue())
    click.echo(f"wrote {len(rows)} rows to {file}", err=True)


@labels.command("set")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--as", "label", required=True, help="The label to give.")
@click.option(
    "--box",
    metavar="X0,Y0,X1,Y1",
    help="Label this region of the image (one file) instead: a box, in the image's pixels "
    "after EXIF rotation, as `search --box` takes them.",
)
@library_option
def set_(paths, label, box, library):
    """Label the images at PATHS (files, or folders: every image under them) as LABEL.

    With --box, PATH is one image file and the label goes to a new box of it, which
    gets its own vector (the crop's): a box is a query and tagging learns from it.
    """
    label = check_label(label)
    if box is not None:
        _add_box(paths, label, box, library)
        return
    with Library.open(library, readonly=False) as lib:
        ids = resolve_paths(lib, paths)
        changed = set_labels(lib, ids, label, origin="manual")
        label = lib.catalog.labels_of(ids[:1]).get(ids[0], label) if ids else label
    click.echo(f"labelled {count(len(ids), 'image')} as {label!r} ({changed} changed)")


def _add_box(paths, label, text, library):
    if len(paths) != 1:
        raise click.UsageError("--box labels a region of one image: give one PATH")
    region = boxes.parse_box(text)
    with Library.open(library, readonly=False) as lib:
        image_id = _one_image(lib, paths[0])
        row = boxes.add_box(lib, _embedder(lib), image_id, region, label)
    x0, y0, x1, y1 = row.box
    click.echo(f"box {row.id} added to {paths[0]}: {x0},{y0},{x1},{y1} as {row.label!r}")


def _one_image(lib, path) -> int:
    row = lib.catalog.image_by_path(os.path.abspath(os.path.expanduser(path)))
    if row is None:
        resolve_paths(lib, [path])  # an unknown path: UnknownImages, saying why
        raise click.UsageError(f"{path} is a folder; --box and boxes take one image file")
    return row["id"]


def _embedder(lib):
    from lookalike.indexer.models.registry import load_embedder_for

    info = lib.model_info()
    if info is None:
        raise click.ClickException("the library has no model yet: index some images first")
    return load_embedder_for(info)


@labels.command("boxes")
@click.argument("path", type=click.Path())
@library_option
@json_option
def boxes_(path, library, as_json):
    """The boxes of the image at PATH: id, region X0,Y0,X1,Y1, label, origin.

    A box marked stale was drawn on content the image no longer has (an index run
    found the file changed): it is neither searched nor learnt from; remove it with
    `lookalike labels remove-box ID` and draw it again.
    """
    with Library.open(library) as lib:
        image_id = _one_image(lib, path)
        rows = box_store.boxes_of(lib.catalog, image_id)
    if as_json:
        click.echo(json.dumps([boxes.box_json(r) for r in rows]))
        return
    if not rows:
        click.echo(f"no boxes on {path}: lookalike labels set {path} --as LABEL --box X0,Y0,X1,Y1")
        return
    for r in rows:
        notes = [r.origin] + (["stale: the image changed since"] if r.stale else [])
        click.echo(f"{r.id}\t{','.join(map(str, r.box))}\t{r.label or '-'}\t{', '.join(notes)}")


@labels.command("remove-box")
@click.argument("ids", nargs=-1, required=True, type=int)
@library_option
def remove_box(ids, library):
    """Remove the boxes with these IDS (as `labels boxes PATH` lists them); all or none."""
    with Library.open(library, readonly=False) as lib:
        n = boxes.delete_boxes(lib, ids)
    click.echo(f"removed {count(n, 'box')}")


@labels.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@library_option
def remove(paths, library):
    """Remove the human labels of the images at PATHS (files or folders)."""
    with Library.open(library, readonly=False) as lib:
        ids = resolve_paths(lib, paths)
        removed = remove_labels(lib, ids)
    click.echo(f"removed {count(removed, 'label')} ({len(ids) - removed} of the images had none)")


@labels.command("list")
@library_option
@json_option
def list_(library, as_json):
    """Each label with its number of images: labelled by a person, and predicted."""
    with Library.open(library) as lib:
        counts, unknown = label_counts(lib)
        run = last_run(lib)
    if as_json:
        doc = {
            "labels": [c._asdict() for c in counts],
            "unknown": unknown,
            "head": run.head if run else None,
        }
        click.echo(json.dumps(doc))
        return
    if not counts:
        click.echo("no labels yet: lookalike labels set PATH... --as LABEL, or labels import")
        return
    width = max(12, *(len(c.label) for c in counts))
    click.echo(f"{'label':<{width}}  {'human':>6}  {'predicted':>9}")
    stale = False
    for c in counts:
        note = "  (no human labels left: tags from an earlier tag run *)" if not c.human else ""
        stale = stale or bool(note)
        click.echo(f"{c.label:<{width}}  {c.human:>6}  {c.predicted:>9}{note}")
    click.echo(
        f"{'(unknown)':<{width}}  {'':>6}  {unknown:>9}"
        + (f"   [tags by the {run.head} head]" if run else "")
    )
    if stale:
        click.echo("* lookalike tag predicts again from the current labels")


def _export_boxes(file, library, tags, fmt):
    if tags:
        raise click.UsageError("--tags exports CSV only")
    if file is None:
        raise click.UsageError(f"--format {fmt} needs a {'folder' if fmt == 'yolo' else 'FILE'}")
    with Library.open(library) as lib:
        n = write_coco(lib, file) if fmt == "coco" else write_yolo(lib, file)
        _, stale = box_store.box_counts(lib.catalog)
    click.echo(f"wrote {n} {'annotations' if fmt == 'coco' else 'images'} to {file}", err=True)
    if stale:  # drawn on content the image no longer has: not an annotation of it now
        click.echo(
            f"left out {count(stale, 'stale box')} (their image changed "
            "since they were drawn: `lookalike labels boxes PATH` lists them, redraw or remove "
            "them)",
            err=True,
        )


@labels.command("next")
@library_option
@click.option(
    "-n",
    "count",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many images.",
)
@json_option
def next_(library, count, as_json):
    """The unlabelled images whose label would teach the tagger most, best first.

    Uncertain tags, images in dense regions far from every labelled image (a class
    nobody labelled yet, an under-covered part of a class) come first, spread over
    different regions; each with the tagger's suggestions. Run `lookalike tag`
    after labelling to refresh the tags the queue follows.
    """
    with Library.open(library) as lib:
        queue = next_images(lib, count)
    if as_json:
        click.echo(json.dumps(queue.as_json()))
        return
    if not queue.items:
        click.echo("nothing to label: every image has a human label")
        return
    for item in queue.items:
        hints = ", ".join(f"{label} {c:.0%}" for label, c in item.suggestions) or "no suggestion"
        click.echo(f"{item.path}\t{hints}")


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
