"""lookalike info: what a library holds."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.library import Library
from lookalike.terminal import shown
from lookalike.words import count


@click.command()
@library_option
@json_option
def info(library, as_json):
    """Show what the library holds: images, errors, model, index, labels, size."""
    with Library.open(library) as lib:
        doc = lib.describe()
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"library  {shown(doc['library'])}")
    click.echo(f"images   {doc['images']}")
    offline = doc["offline"]
    if offline["images"]:
        folders = ", ".join(shown(f) for f in offline["folders"])
        click.echo(
            f"offline  {count(offline['images'], 'image')} kept, their folder cannot be read: "
            f"{folders} (back when it is; `lookalike remove` forgets them)"
        )
    click.echo(f"model    {doc['model']}")
    idx = doc["index"]
    click.echo(
        f"index    {idx['structure']}, generation {idx['generation']}, {idx['pending']} pending"
    )
    if idx["problem"]:
        click.echo(
            f"         DAMAGED: {idx['file']} {shown(idx['problem'])}; searches use an index "
            "rebuilt in memory; lookalike check --repair rebuilds the file"
        )
    copies = doc["copy_detection"]
    missing = copies["missing"] if copies else 0
    click.echo(
        f"copies   {copies['model']}, {copies['descriptors']} descriptors"
        + (
            f" ({count(missing, 'image')} without one: `lookalike index` computes the "
            "missing ones, as after a run that stopped early)"
            if missing
            else ""
        )
        if copies
        else "copies   off (lookalike index --copy-detection turns it on)"
    )
    click.echo(
        f"labels   {count(doc['labels']['images'], 'image')} in "
        f"{count(len(doc['labels']['classes']), 'class')}"
    )
    boxes = doc["boxes"]
    stale = (
        f" ({boxes['stale']} stale: drawn on content the image no longer has; "
        "lookalike labels boxes PATH lists them)"
        if boxes["stale"]
        else ""
    )
    click.echo(f"boxes    {count(boxes['human'], 'box')}{stale}")
    tags = doc["tags"]
    click.echo(f"tags     {count(tags['images'], 'image')} ({tags['unknown']} unknown)")
    click.echo(f"size     {doc['bytes'] / 1e6:.1f} MB")
    click.echo(f"errors   {len(doc['errors'])}")
    for e in doc["errors"]:
        click.echo(f"  {shown(e['path'])}: {shown(e['error'])}")
