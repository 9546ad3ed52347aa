"""lookalike index: add folders to a library, incrementally."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option

SHOW_SKIPPED = 20


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@library_option
@click.option(
    "--model",
    default=None,
    help="Embedding model for a new library: efficientnet-lite0 (default, offline) "
    "or openclip:ARCH:PRETRAINED.",
)
@click.option("--labels-from-folders", is_flag=True, help="Label each image by its folder name.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 512))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Loader threads."
)
@click.option(
    "--max-pixels",
    default=150_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Refuse images larger than this (decompression bombs).",
)
@click.option("--retry-errors", is_flag=True, help="Re-read unchanged files that failed before.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option
def index(
    paths,
    library,
    model,
    labels_from_folders,
    batch_size,
    workers,
    max_pixels,
    retry_errors,
    quiet,
    as_json,
):
    """Index the images under PATHS (folders or files) into the library.

    Only new or changed files are embedded; moved or renamed files keep their
    data; files gone from the given folders are removed. Safe to interrupt:
    a rerun finishes the work.
    """
    from indexer.batch import IndexOptions, index_paths
    from indexer.embedder import load_embedder
    from indexer.library import Library

    embedder = _embedder_for(library, model, load_embedder)
    options = IndexOptions(
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        labels_from_folders=labels_from_folders,
        progress=not quiet and not as_json,
        retry_errors=retry_errors,
    )
    with Library.create(library, embedder.info) as lib:
        summary = index_paths(lib, embedder, paths, options)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    for s in summary.skipped[:SHOW_SKIPPED]:
        click.echo(f"skipping {s.path}: {s.reason}", err=True)
    if len(summary.skipped) > SHOW_SKIPPED:
        more = len(summary.skipped) - SHOW_SKIPPED
        click.echo(f"... and {more} more skipped (lookalike info lists them)", err=True)
    click.echo(
        f"indexed in {summary.seconds:.1f}s ({summary.images_per_s:.0f} images/s): "
        f"{summary.added} added, {summary.updated} updated, {summary.moved} moved, "
        f"{summary.copied} copies, {summary.removed} removed, {summary.unchanged} unchanged, "
        f"{len(summary.skipped)} skipped"
        + (f", {summary.labelled} labelled from folders" if labels_from_folders else "")
    )


def _embedder_for(library, model, load_embedder):
    """The model the library was built with, or --model (default) for a new library."""
    from indexer.errors import LibraryNotFound, ModelMismatch
    from indexer.library import Library

    try:
        with Library.open(library) as lib:
            stored = lib.model_info()
    except LibraryNotFound:
        stored = None
    if stored is not None and model and model != stored.name:
        raise ModelMismatch(library or "the library", stored.name, model)
    return load_embedder(model or (stored.name if stored else None))
