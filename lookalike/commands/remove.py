"""lookalike remove: take images out of the library on purpose (an offline disk's too)."""

from __future__ import annotations

import click

from lookalike.commands.options import library_option
from lookalike.indexer.pipeline import remove_from_library
from lookalike.words import count


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@library_option
def remove(paths, library):
    """Take the images at PATHS out of the library, on purpose (files stay on disk).

    PATHS are indexed files or folders, present or offline (a folder `lookalike index`
    could not read keeps its images until it is back or removed here). Human labels are
    kept by content: the same picture indexed again gets its label back.
    """
    done = remove_from_library(library, paths)
    click.echo(
        f"removed {count(done.removed, 'image')} from the library "
        f"({count(done.labels_kept, 'human label')} kept by content for a later index run)"
    )
