"""lookalike info: what a library holds."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option


def library_info(lib) -> dict:
    """The facts ``info`` prints, as a JSON-able dict."""
    from lookalike.indexer.store.copy_vectors import recorded_model

    cat = lib.catalog
    model = lib.model_info()
    labels = cat.conn.execute(
        "SELECT label, COUNT(*) FROM labels GROUP BY label ORDER BY COUNT(*) DESC, label"
    ).fetchall()
    tags = cat.conn.execute("SELECT COUNT(*), SUM(label IS NULL) FROM tags").fetchone()
    copy_model = recorded_model(cat)
    return {
        "library": str(lib.root),
        "images": cat.count(),
        "errors": [{"path": e.path, "error": e.error} for e in cat.errors()],
        "model": model.name if model else None,
        "model_info": {
            "dim": model.dim,
            "preprocessing": model.preprocessing,
            "weights_hash": model.weights_hash,
            "descriptor": model.descriptor,
        }
        if model
        else None,
        "index": {
            "file": lib.index_path().name if lib.index_generation() else None,
            "kind": cat.get_meta("index_kind", "flat"),
            "structure": cat.get_meta("index_structure", cat.get_meta("index_kind", "flat")),
            "generation": lib.index_generation(),
            "pending": len(cat.pending_index()),
        },
        "copy_detection": {"model": copy_model.name, "descriptors": cat.count_copy_vectors()}
        if copy_model
        else None,
        "labels": {"images": sum(n for _l, n in labels), "classes": dict(labels)},
        "tags": {"images": tags[0] or 0, "unknown": int(tags[1] or 0)},
        "tagging": json.loads(cat.get_meta("tagging") or "null"),  # last `lookalike tag` run
        "bytes": lib.disk_bytes(),
    }


@click.command()
@library_option
@json_option
def info(library, as_json):
    """Show what the library holds: images, errors, model, index, labels, size."""
    from lookalike.indexer.store.library import Library

    with Library.open(library) as lib:
        doc = library_info(lib)
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"library  {doc['library']}")
    click.echo(f"images   {doc['images']}")
    click.echo(f"model    {doc['model']}")
    idx = doc["index"]
    click.echo(
        f"index    {idx['structure']}, generation {idx['generation']}, {idx['pending']} pending"
    )
    copies = doc["copy_detection"]
    click.echo(
        f"copies   {copies['model']}, {copies['descriptors']} descriptors"
        if copies
        else "copies   off (lookalike index --copy-detection turns it on)"
    )
    click.echo(
        f"labels   {doc['labels']['images']} images in {len(doc['labels']['classes'])} classes"
    )
    click.echo(f"tags     {doc['tags']['images']} images ({doc['tags']['unknown']} unknown)")
    click.echo(f"size     {doc['bytes'] / 1e6:.1f} MB")
    click.echo(f"errors   {len(doc['errors'])}")
    for e in doc["errors"]:
        click.echo(f"  {e['path']}: {e['error']}")
