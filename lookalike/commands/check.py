"""lookalike check: the library's files against its catalog, and --repair."""

from __future__ import annotations

import json

import click

from lookalike.commands.options import json_option, library_option
from lookalike.indexer.store.integrity import check_library
from lookalike.indexer.store.library import Library
from lookalike.terminal import shown


@click.command()
@library_option
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild a damaged index or vectors.f16 from the catalog and remove left-over files.",
)
@json_option
def check(library, repair, as_json):
    """Check the catalog, the index file and vectors.f16, and find left-over files.

    The catalog is the truth: SQLite's integrity check runs on it, and the index file
    (size, checksum, count, ids) and vectors.f16 (every row) are compared with it.
    Prints what it found and, with --repair, what it did. Exits 1 when a problem
    remains (a damaged catalog cannot be repaired here: restore a backup).
    """
    with Library.open(library, readonly=not repair) as lib:
        if repair:
            with lib.locked():
                report = check_library(lib, repair=True)
        else:
            report = check_library(lib)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"library  {shown(report.library)}")
        for f in report.findings:
            state = "repaired" if f.repaired else ("" if f.part == "unknown" else "NOT repaired")
            click.echo(f"{f.part:<8} {shown(f.problem)}" + (f" ({state})" if state else ""))
        for action in report.actions:
            click.echo(f"repair   {shown(action)}")
        if not report.findings:
            click.echo("ok       catalog, index and vectors agree; no left-over files")
        elif any(f.part == "catalog" for f in report.findings):
            click.echo("the catalog is damaged: restore catalog.sqlite from a backup")
        elif not report.ok and not repair:
            click.echo("lookalike check --repair rebuilds what can be rebuilt from the catalog")
    if not report.ok:
        click.get_current_context().exit(1)
