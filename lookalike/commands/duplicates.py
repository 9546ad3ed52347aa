"""lookalike duplicates: groups of near-duplicate images in a library."""

from __future__ import annotations

import json
import sys

import click

from lookalike.commands.options import json_option, library_option
from lookalike.indexer.errors import LookalikeError
from lookalike.search.copy_groups import DEFAULT_CANDIDATE_THRESHOLD, CopyPass
from lookalike.search.duplicates import DEFAULT_THRESHOLD, DuplicateGroup, check_threshold
from lookalike.search.searcher import Searcher


@click.command()
@library_option
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Cosine similarity in (0, 1] at or above which a vector neighbour is a candidate, "
    "verified afterwards (for tiny images 0.75 of it; perceptual-hash candidates come in "
    "addition) [default: "
    f"{DEFAULT_CANDIDATE_THRESHOLD:g}; with --look-alikes the grouping threshold, default "
    f"{DEFAULT_THRESHOLD:g}].",
)
@click.option(
    "--look-alikes",
    "look_alikes",
    is_flag=True,
    help="Group by the semantic vector alone, without verification (connected components "
    "of similar images: look-alikes of one kind, not only copies of one picture).",
)
@json_option
def duplicates(library, threshold, look_alikes, as_json):
    """Group copies of one picture (resized, recompressed, cropped, edited).

    Mirrored copies too; candidate pairs are verified by local features as search
    verifies its results.

    Each group lists its best image first (the one to keep: largest, least compressed,
    original format), then each copy with its kind of match (identical, re-encoded,
    resized, cropped, edited) and score (local matches with the best image; the vectors'
    cosine). Pair verdicts and perceptual hashes are kept in the library, so a later run
    decodes and verifies only new or changed images; a small image's deeper candidates
    are verified only while none of its first ones verified ("skipped": those not
    needed). With --json,
    prints {"threshold": T, "mode": "verified", "candidates": n, "newly_verified": n,
    "skipped": n, "groups": [{"size": n, "keep":
    id, "members": [{"id", "path", "score", "kind", "inliers", "width", "height",
    "bytes"}, ...]}, ...]} (kind "best" for the image to keep; inliers 0 for it and for
    an identical file);
    with --look-alikes, members carry only id, path and score.
    """
    default = DEFAULT_THRESHOLD if look_alikes else DEFAULT_CANDIDATE_THRESHOLD
    threshold = check_threshold(default if threshold is None else threshold)
    searcher = Searcher.open(library)
    try:
        if searcher.library.catalog.count() == 0:
            raise LookalikeError(f"the library {searcher.library.root} has no images yet")
        if look_alikes:
            with _progress(searcher.index.ntotal) as on_progress:
                semantic = searcher.duplicates(threshold, on_progress=on_progress)
        else:
            found = searcher.copy_groups(threshold)
    finally:
        searcher.close()
    if look_alikes:
        _print_look_alikes(semantic, threshold, as_json)
    else:
        _print_copies(found, threshold, as_json)


def _print_copies(found: CopyPass, threshold: float, as_json: bool) -> None:
    groups = found.groups
    if as_json:
        doc = {
            "threshold": threshold,
            "mode": "verified",
            "candidates": found.candidates,
            "newly_verified": found.verified,
            "skipped": found.skipped,
            "groups": [
                {
                    "size": g.size,
                    "keep": g.keep,
                    "members": [m._asdict() | {"score": round(m.score, 6)} for m in g.members],
                }
                for g in groups
            ],
        }
        click.echo(json.dumps(doc))
        return
    images = sum(g.size for g in groups)
    click.echo(
        f"{len(groups)} {_plural(len(groups), 'group')} of copies ({images} images; "
        f"{found.candidates} candidate pairs, {found.verified} verified now, "
        f"{found.skipped} not needed)"
    )
    for number, g in enumerate(groups, start=1):
        click.echo(f"group {number}: {g.size} images")
        for m in g.members:
            what = "keep" if m.kind == "best" else m.kind
            if m.inliers:
                what += f", {m.inliers} matches"
            click.echo(f"  {m.score:.4f}  {m.path}  ({what})")
    if groups:
        click.echo(
            "(each group: the image to keep first, then the others largest first; the "
            "number is the vectors' cosine to the first, the matches its verified local "
            "matches)"
        )


def _print_look_alikes(groups: list[DuplicateGroup], threshold: float, as_json: bool) -> None:
    if as_json:
        doc = {
            "threshold": threshold,
            "mode": "look-alikes",
            "groups": [
                {
                    "size": g.size,
                    "members": [m._asdict() | {"score": round(m.score, 6)} for m in g.members],
                }
                for g in groups
            ],
        }
        click.echo(json.dumps(doc))
        return
    images = sum(g.size for g in groups)
    click.echo(f"{len(groups)} groups of look-alikes ({images} images) at threshold {threshold:g}")
    for number, g in enumerate(groups, start=1):
        click.echo(f"group {number}: {g.size} images")
        for m in g.members:
            click.echo(f"  {m.score:.4f}  {m.path}")


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


class _progress:
    """A progress bar on a terminal's stderr for large libraries; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty() and total > 20_000:
            from tqdm import tqdm  # only when a bar is shown: keeps `lookalike --help` quick

            self.bar = tqdm(total=total, unit="img", desc="duplicates", file=sys.stderr)

    def __enter__(self):
        bar = self.bar
        if bar is None:
            return None

        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        return update

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
