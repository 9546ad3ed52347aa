"""lookalike clusters: discover new categories among unlabelled images, and review them."""

from __future__ import annotations

import json

import click

from lookalike.classifier.clustering import review
from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.library import Library
from lookalike.words import count


def _library(ctx: click.Context, library: str | None) -> str | None:
    """A subcommand's --library, else the one given to ``clusters`` itself."""
    return library or (ctx.obj or {}).get("library")


def _writable(ctx: click.Context, library: str | None) -> Library:
    return Library.open(_library(ctx, library), readonly=False)


def _echo_cluster(
    cluster: review.ClusterView, members: bool = False, proposed: bool = True
) -> None:
    sim = cluster.nearest_label_similarity
    near = f"{cluster.nearest_label} ({sim:.2f})" if cluster.nearest_label else "-"
    if cluster.kind == "label":
        look = "looks" if cluster.size == 1 else "look"
        click.echo(
            f"cluster {cluster.id}: {count(cluster.size, 'image')} {look} like "
            f"{cluster.label!r} (similarity {sim or 0:.2f}, cohesion {cluster.cohesion:.2f})"
            + (f": merge {cluster.id} --into {cluster.label}" if proposed else "")
        )
    else:
        click.echo(
            f"cluster {cluster.id}: new category, {count(cluster.size, 'image')}, cohesion "
            f"{cluster.cohesion:.2f}, looks like {cluster.suggested_name or '-'}, "
            f"nearest label {near}"
        )
    for member in cluster.members if members else cluster.representatives:
        click.echo(f"  {member.path}")


@click.group(invoke_without_command=True)
@library_option
@click.option(
    "--min-size",
    type=click.IntRange(2),
    default=None,
    help="Smallest group proposed as a new category [default: 5; never reused from an "
    "earlier run].",
)
@json_option
@click.pass_context
def clusters(ctx, library, min_size, as_json):
    """Group the images without a human label into clusters, most promising first.

    Without a subcommand, lists the proposals (re-clustering when the library changed):
    first the new categories, then one proposal per existing label for the unlabelled
    images that look like it (merge them into it). Each shows its size, cohesion (mean
    cosine similarity), a suggested name (the members' most likely ImageNet class) and
    the nearest existing label. Review them with accept, merge, split, reject; inspect
    one with show.
    """
    ctx.obj = {"library": library}
    if ctx.invoked_subcommand is not None:
        return
    # Read-only while the stored proposals are up to date; writable to re-cluster.
    with Library.open(library) as lib:
        listing = review.current_listing(lib, min_size)
    if listing is None:
        with Library.open(library, readonly=False) as lib:
            listing = review.list_clusters(lib, min_size)
    if as_json:
        click.echo(json.dumps(listing.to_json()))
        return
    new = sum(c.kind == "new" for c in listing.clusters)
    click.echo(
        f"{count(len(listing.clusters), 'cluster')}, {count(len(listing.noise), 'image')} "
        f"left as noise ({count(new, 'new category')} of "
        f"{listing.min_size}+ images, "
        f"{len(listing.clusters) - new} near existing labels; --min-size {listing.min_size})"
    )
    for c in listing.clusters:
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
    with _writable(ctx, library) as lib:
        dropped = review.members_at(lib, cluster_id, exclude)
        done = review.accept(lib, cluster_id, name, dropped)
    line = f"labelled {count(done.labelled, 'image')} {done.cluster.name!r} (origin review)"
    click.echo(json.dumps(done.to_json()) if as_json else line)


@clusters.command()
@click.argument("cluster_id", type=int)
@click.option("--into", "label", required=True, help="An existing label.")
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(),
    help="A member to leave unlabelled (repeatable).",
)
@library_option
@json_option
@click.pass_context
def merge(ctx, cluster_id, label, exclude, library, as_json):
    """Add the images of cluster CLUSTER_ID to the existing LABEL."""
    with _writable(ctx, library) as lib:
        dropped = review.members_at(lib, cluster_id, exclude)
        done = review.merge(lib, cluster_id, label, dropped)
    line = f"labelled {count(done.labelled, 'image')} {done.cluster.name!r} (origin review)"
    click.echo(json.dumps(done.to_json()) if as_json else line)


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def split(ctx, cluster_id, library, as_json):
    """Split cluster CLUSTER_ID into its natural parts (two or more), none smaller than
    the listing's --min-size."""
    with _writable(ctx, library) as lib:
        parts = review.split(lib, cluster_id)
    if as_json:
        click.echo(json.dumps([p.to_json() for p in parts]))
        return
    click.echo(f"cluster {cluster_id} split into {', '.join(str(p.id) for p in parts)}")
    for p in parts:
        _echo_cluster(p)


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def reject(ctx, cluster_id, library, as_json):
    """Mark cluster CLUSTER_ID as not a class; its images are not proposed together again."""
    with _writable(ctx, library) as lib:
        cluster = review.reject(lib, cluster_id)
    click.echo(json.dumps(cluster.to_json()) if as_json else f"cluster {cluster_id} rejected")


@clusters.command()
@click.argument("cluster_id", type=int)
@library_option
@json_option
@click.pass_context
def show(ctx, cluster_id, library, as_json):
    """Show cluster CLUSTER_ID: status, names, and every member."""
    with Library.open(_library(ctx, library)) as lib:
        cluster = review.show(lib, cluster_id)
    if as_json:
        click.echo(json.dumps(cluster.to_json()))
        return
    status = cluster.status + (f" as {cluster.name!r}" if cluster.name else "")
    click.echo(f"status: {status}")
    _echo_cluster(cluster, members=True, proposed=cluster.status == "proposed")
