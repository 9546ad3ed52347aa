"""lookalike search: the library images most similar to query images."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.images import DEFAULT_MAX_PIXELS
from lookalike.search.searcher import Box, Searcher
from lookalike.search.searcher import parse_box as parse
from lookalike.terminal import shown


def parse_box(value: str | None) -> Box | None:
    if value is None:
        return None
    try:
        return parse(value)
    except BadQuery:
        raise click.BadParameter("expected four numbers X0,Y0,X1,Y1", param_hint="--box") from None


@click.command()
@click.argument("images", nargs=-1, required=False, type=click.Path())
@library_option
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--box", default=None, help="Search with the region X0,Y0,X1,Y1 (pixels) of IMAGE.")
@click.option(
    "--text", default=None, help="Search by words instead of IMAGES (a library built with CLIP)."
)
@click.option(
    "--object",
    "find_object",
    is_flag=True,
    help="Search with the main object of each image, found by the CNN's class-activation map.",
)
@click.option(
    "--rerank/--no-rerank",
    default=True,
    show_default=True,
    help="Re-rank the top candidates by geometric verification (copies first); in a library "
    "with copy detection, the candidates come from its copy descriptors too. --no-rerank "
    "keeps the two embedded views of the query, without the re-ranking.",
)
@click.option(
    "--max-pixels",
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    type=click.IntRange(1),
    help="Refuse query images larger than this (decompression bombs).",
)
@json_option
def search(images, library, k, box, text, find_object, rerank, max_pixels, as_json):
    """Find the library images most similar to each of IMAGES, or to --text TEXT.

    The model loads once for all queries. With --json, prints a list with one
    object per query: {"query": ..., "box": [X0, Y0, X1, Y1] or null (the region
    searched with, --box or --object), "results": [{"path", "score", "id", "match"},
    ...]}. "match" is "copy" for an edited copy that geometric verification confirmed
    (or the same picture), "probable" for the copy descriptors' clear nearest (libraries
    with copy detection), null for a look-alike (and with --no-rerank).
    """
    if text is not None and (images or box):
        raise BadQuery("give query IMAGES or --text TEXT, not both (--box needs an image)")
    if text is None and not images:
        raise BadQuery("give one or more query IMAGES, or --text TEXT for a CLIP library")
    region = parse_box(box)
    if region is not None and len(images) != 1:
        raise BadQuery("--box needs exactly one query image")
    if find_object and (region is not None or text is not None):
        raise BadQuery("--object finds the region itself: leave out --box and --text")
    searcher = Searcher.open(library, rerank=rerank, max_pixels=max_pixels)
    boxes: list = [None] * max(1, len(images))
    try:
        if text is not None:
            images = (text,)
            results = [searcher.search_text(text, k)]
        elif find_object:
            found = [searcher.search_object(q, k) for q in images]
            results, boxes = [f.results for f in found], [list(f.box) for f in found]
        elif region is None:
            results = searcher.search_many(list(images), k)
        else:
            results = [searcher.search(images[0], k, box=region)]
            boxes = [[int(round(v)) for v in region]]
    finally:
        searcher.close()
    if as_json:
        doc = [
            {
                "query": q,
                "box": b,
                "results": [r._asdict() | {"score": round(r.score, 6)} for r in rs],
            }
            for q, b, rs in zip(images, boxes, results, strict=True)
        ]
        click.echo(json.dumps(doc))
        return
    for q, b, rs in zip(images, boxes, results, strict=True):
        click.echo(f"{shown(q)}:" if b is None else f"{shown(q)} (region {','.join(map(str, b))}):")
        for r in rs:
            mark = f"  ({r.match} copy)" if r.match == "probable" else f"  ({r.match})"
            click.echo(f"  {r.score:.4f}  {shown(r.path)}" + (mark if r.match else ""))
