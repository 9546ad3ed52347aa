"""lookalike clusters: discover new categories among unlabelled images, and review them."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option


def _library(ctx: click.Context, library: str | None) -> str | None:
    """A subcommand's --library, else the one given to ``clusters`` itself."""
    return library or (ctx.obj or {}).get("library")


def _echo_cluster(doc: dict, members: bool = False) -> None:
    sim = doc["nearest_label_similarity"]
    near = f"{doc['nearest_label']} ({sim:.2f})" if doc["nearest_label"] else "-"
    click.echo(
        f"cluster {doc['id']}: {doc['size']} images, cohesion {doc['cohesion']:.2f}, "
        f"looks like {doc['suggested_name'] or '-'}, nearest label {near}"
    )
    shown = doc["members"] if members else doc["representatives"]
    for path in shown:
        click.echo(f"  {path}")


@click.group(invoke_without_command=True)
@library_option
@click.option(
    "--min-size",
    type=click.IntRange(2),
    default=None,
    help="Smallest group proposed as a new category [default: 5, or the last one used].",
)
@json_option
@click.pass_context
def clusters(ctx, library, min_size, as_json):
    """Group the images without a human label into clusters, most promising first.

    Without a subcommand, lists the proposals (re-clustering when the library changed).
    Each cluster shows its size, cohesion (mean cosine similarity), a suggested name
    (the members' most likely ImageNet class) and the nearest existing label. Review
    them with accept, merge, split, reject; inspect one with show.
    """
    ctx.obj = {"library": library}
    if ctx.invoked_subcommand is not None:
        return
    from lookalike.classifier.clustering.review import list_clusters

    doc = list_clusters(library, min_size)
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"{len(doc['clusters'])} clusters, {len(doc['noise'])} images left as noise")
    for c in doc["clusters"]:
        _echo_cluster(c)
    click.echo(
        "review: lookalike clusters accept ID --as NAME | merge ID --into LABEL | split ID | "
        "reject ID | show ID"
    )


@clusters.command()
@click.argument("cluster_id", type=int)
@click.option("--as", "name", required=True, help="The new label for the cluster's images.")
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(),
    help="A member to leave unlabelled (repeatable).",
)
@library_option
@json_option
@click.pass_context
def accept(ctx, cluster_id, name, exclude, library, as_json):
    """Label the images of cluster CLUSTER_ID as NAME (a new class)."""
    from lookalike.classifier.clustering.review import accept as do_accept

    doc = do_accept(_library(ctx, library), cluster_id, name, exclude)
    _report(doc, as_json, f"labelled {doc['labelled']} images {doc['name']!r} (origin review)")


@clusters.command()
@click.argument("cluster_id", type=int)
@click.option("--into", "label", required=True, help="An existing label.")
@library_option
@json_option
@click.pass_context
def merge(ctx, cluster_id, label, library, as_json):
    """Add the images of cluster CLUSTER_ID to the existing LABEL."""
    from lookalike.classifier.clustering.review import merge as do_merge

    doc = do_merge(_library(ctx, library), cluster_id, label)
    _report(doc, as_json, f"labelled {doc['labelled']} images {label!r} (origin review)")


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def split(ctx, cluster_id, library, as_json):
    """Re-cluster cluster CLUSTER_ID finer, into two new clusters."""
    from lookalike.classifier.clustering.review import split as do_split

    docs = do_split(_library(ctx, library), cluster_id)
    if as_json:
        click.echo(json.dumps(docs))
        return
    click.echo(f"cluster {cluster_id} split into {', '.join(str(d['id']) for d in docs)}")
    for d in docs:
        _echo_cluster(d)


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def reject(ctx, cluster_id, library, as_json):
    """Mark cluster CLUSTER_ID as not a class; its images are not proposed together again."""
    from lookalike.classifier.clustering.review import reject as do_reject

    doc = do_reject(_library(ctx, library), cluster_id)
    _report(doc, as_json, f"cluster {cluster_id} rejected")


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def show(ctx, cluster_id, library, as_json):
    """Show cluster CLUSTER_ID: status, names, and every member."""
    from lookalike.classifier.clustering.review import show as do_show

    doc = do_show(_library(ctx, library), cluster_id)
    if as_json:
        click.echo(json.dumps(doc))
        return
    status = doc["status"] + (f" as {doc['name']!r}" if doc["name"] else "")
    click.echo(f"status: {status}")
    _echo_cluster(doc, members=True)


def _report(doc: dict, as_json: bool, line: str) -> None:
    click.echo(json.dumps(doc) if as_json else line)
