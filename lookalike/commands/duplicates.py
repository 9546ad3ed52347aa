"""lookalike duplicates: groups of near-duplicate images in a library."""

from __future__ import annotations

import json
import sys

import click

from lookalike.commands.options import json_option, library_option
from lookalike.search.duplicates import DEFAULT_THRESHOLD, check_threshold
from lookalike.search.searcher import Searcher


@click.command()
@library_option
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Cosine similarity in (0, 1] at or above which two images are near-duplicates "
    "[default: 0.86, the best F1 on generated copies; higher finds fewer, closer copies].",
)
@json_option
def duplicates(library, threshold, as_json):
    """Group near-duplicate images (resized, recompressed, slightly cropped copies).

    Groups are printed largest first; each member's score is its similarity to the
    group's first image. With --json, prints {"threshold": T, "groups": [{"size": n,
    "members": [{"id", "path", "score"}, ...]}, ...]}. Runs in memory proportional to
    the library, never to its square, so it works on a million images (it takes minutes).
    """
    threshold = check_threshold(DEFAULT_THRESHOLD if threshold is None else threshold)
    searcher = Searcher.open(library)
    try:
        with _progress(searcher.index.ntotal) as on_progress:
            groups = searcher.duplicates(threshold, on_progress=on_progress)
    finally:
        searcher.close()
    if as_json:
        doc = {
            "threshold": threshold,
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
    click.echo(
        f"{len(groups)} groups of near-duplicates ({images} images) at threshold {threshold:g}"
    )
    for number, g in enumerate(groups, start=1):
        click.echo(f"group {number}: {g.size} images")
        for m in g.members:
            click.echo(f"  {m.score:.4f}  {m.path}")


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
