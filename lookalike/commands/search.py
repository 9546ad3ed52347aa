"""lookalike search: the library images most similar to query images."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option


def parse_box(value: str | None):
    if value is None:
        return None
    parts = value.split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise click.BadParameter("expected four numbers X0,Y0,X1,Y1", param_hint="--box")
    return box


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@library_option
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--box", default=None, help="Search with the region X0,Y0,X1,Y1 (pixels) of IMAGE.")
@json_option
def search(images, library, k, box, as_json):
    """Find the library images most similar to each of IMAGES.

    The model loads once for all queries. With --json, prints a list with one
    object per query: {"query": ..., "results": [{"path", "score", "id"}, ...]}.
    """
    from indexer.errors import BadQuery
    from search.searcher import Searcher

    region = parse_box(box)
    if region is not None and len(images) != 1:
        raise BadQuery("--box needs exactly one query image")
    searcher = Searcher.open(library)
    try:
        if region is None:
            results = searcher.search_many(list(images), k)
        else:
            results = [searcher.search(images[0], k, box=region)]
    finally:
        searcher.close()
    if as_json:
        doc = [
            {"query": q, "results": [r._asdict() | {"score": round(r.score, 6)} for r in rs]}
            for q, rs in zip(images, results, strict=True)
        ]
        click.echo(json.dumps(doc))
        return
    for q, rs in zip(images, results, strict=True):
        click.echo(f"{q}:")
        for r in rs:
            click.echo(f"  {r.score:.4f}  {r.path}")
