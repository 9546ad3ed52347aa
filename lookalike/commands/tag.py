"""lookalike tag: predict a label (or "unknown") for every image without a human label."""

from __future__ import annotations

import json

import click

from lookalike.classifier.tagging.suggestions import suggest as suggest_labels
from lookalike.classifier.tagging.tagger import DEFAULT_CLUSTERS, DEFAULT_HEAD, HEADS, tag_library
from lookalike.classifier.tagging.validation import tagging_head
from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.library import Library


@click.command()
@library_option
@click.option(
    "--min-confidence",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Leave a tag unknown when it is less likely right than this.",
)
@click.option(
    "--head",
    default=None,
    type=click.Choice(HEADS),
    help="proto: nearest class prototype, unknown when far from the class's labels for "
    "that class's own spread; knn: label propagation over the neighbour graph (the "
    f"earlier default); linear/svm/mlp for comparison. [default: the head chosen on the "
    f"web's evaluation page, or {DEFAULT_HEAD}]",
)
@click.option(
    "--suggest",
    is_flag=True,
    help="Show the model's own suggestions instead (ImageNet classes, or CLIP zero-shot).",
)
@click.option(
    "--top",
    default=3,
    show_default=True,
    type=click.IntRange(1, 5),
    help="Suggestions per image (with --suggest).",
)
@click.option(
    "--with-clusters/--without-clusters",
    "clusters",
    default=DEFAULT_CLUSTERS,
    show_default=True,
    help="Let the library's clusters decide where they speak: an image in a labelled "
    "class's group is tagged, one in a new category's group is unknown (unless its "
    "class has fewer than 5 labels, or the group is a small piece beside a large "
    "class). On long-tailed libraries more images are tagged "
    "right and more of the classes nobody labelled left unknown, but more clutter is "
    "tagged; --without-clusters: the head decides alone.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Calibration rounds' seed.")
@json_option
def tag(library, min_confidence, head, suggest, top, clusters, seed, as_json):
    """Tag every image that has no human label, from the labelled ones.

    Each image gets the label most likely right, or "unknown" when it is more
    likely of a class nobody labelled; where the library's clusters speak, they
    decide (see --without-clusters). The confidence is the estimated
    probability that the answer is right (learnt from your labels by hiding
    some of them; with the clusters, by tagging again with some hidden). Results
    replace the previous run's in the library; human labels are never touched. --json prints
    [{"path": ..., "label": ... or null, "confidence": ...}, ...].
    """
    if suggest:
        _suggest(library, top, as_json)
        return
    with Library.open(library, readonly=False) as lib:
        head = head or tagging_head(lib)
        run = tag_library(
            lib, head=head, min_confidence=min_confidence, seed=seed, clusters=clusters
        )
    if as_json:
        click.echo(json.dumps(run.as_json()))
        return
    info = run.info
    click.echo(
        f"tagged {info.tagged} of {len(run.results)} unlabelled images "
        f"({info.unknown} unknown) from {info.labelled} labels in {info.classes} "
        f"classes with the {head} head{' and the clusters' if clusters else ''} in "
        f"{info.seconds:.1f}s"
    )
    held_out = info.held_out
    if held_out is not None and held_out.known_accuracy is not None:
        novel = "-" if held_out.novel_unknown is None else f"{held_out.novel_unknown:.0%}"
        how = ""
        if info.replay is not None:
            how = f" (tagged again with the clusters, {held_out.rounds_rows} labels hidden)"
        elif clusters:
            how = " (the head alone: too few labels a class to replay the clusters)"
        click.echo(
            f"held-out estimate from your labels{how}: {held_out.known_accuracy:.0%} of "
            f"known-class images tagged right, {novel} of unlabelled-class images left unknown"
        )
    if held_out is not None and held_out.fallback:
        click.echo("too few labels per class to calibrate: confidences are rough defaults")


def _suggest(library, top, as_json):
    with Library.open(library) as lib:
        found = suggest_labels(lib, top=top)
        paths = lib.catalog.paths(found.suggestions.keys())
    if as_json:
        doc = [
            {
                "path": paths[i],
                "suggestions": [{"label": s.label, "score": round(s.score, 4)} for s in ss],
            }
            for i, ss in found.suggestions.items()
        ]
        click.echo(json.dumps({"source": found.source, "images": doc}))
        return
    if not found.suggestions:
        click.echo("no suggestions: every image has a human label")
        return
    click.echo(f"suggestions from {found.source}:")
    for i, ss in found.suggestions.items():
        shown = ", ".join(f"{s.label} {s.score:.2f}" for s in ss)
        click.echo(f"{paths[i]}: {shown}")
