"""lookalike tag: predict a label (or "unknown") for every image without a human label."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option

HEAD_CHOICES = ("knn", "linear", "svm", "mlp")


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
    default="knn",
    show_default=True,
    type=click.Choice(HEAD_CHOICES),
    help="knn: label propagation over the neighbour graph; linear/svm/mlp for comparison.",
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
@click.option("--seed", default=0, show_default=True, type=int, help="Calibration rounds' seed.")
@json_option
def tag(library, min_confidence, head, suggest, top, seed, as_json):
    """Tag every image that has no human label, from the labelled ones.

    Each image gets the label most likely right, or "unknown" when it is more
    likely of a class nobody labelled; the confidence is the estimated
    probability that this answer is right (learnt from your labels by hiding
    some of them). Results replace the previous run's in the library; human
    labels are never touched. --json prints
    [{"path": ..., "label": ... or null, "confidence": ...}, ...].
    """
    if suggest:
        _suggest(library, top, as_json)
        return
    from lookalike.classifier.tagging.tagger import tag_library

    run = tag_library(library, head=head, min_confidence=min_confidence, seed=seed)
    if as_json:
        click.echo(json.dumps(run.as_json()))
        return
    meta = run.meta
    click.echo(
        f"tagged {meta['tagged']} of {len(run.results)} unlabelled images "
        f"({meta['unknown']} unknown) from {meta['labelled']} labels in {meta['classes']} "
        f"classes with the {head} head in {meta['seconds']:.1f}s"
    )
    val = meta.get("validation") or {}
    if val.get("known_accuracy") is not None:
        click.echo(
            f"held-out estimate from your labels: {val['known_accuracy']:.0%} of known-class "
            f"images tagged right, {val['novel_unknown']:.0%} of unlabelled-class images "
            f"left unknown"
        )
    if val.get("fallback"):
        click.echo("too few labels per class to calibrate: confidences are rough defaults")


def _suggest(library, top, as_json):
    from lookalike.classifier.tagging.suggestions import suggest
    from lookalike.indexer.store.library import Library

    with Library.open(library) as lib:
        found = suggest(lib, top=top)
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
    click.echo(f"suggestions from {found.source}:")
    for i, ss in found.suggestions.items():
        shown = ", ".join(f"{s.label} {s.score:.2f}" for s in ss)
        click.echo(f"{paths[i]}: {shown}")
