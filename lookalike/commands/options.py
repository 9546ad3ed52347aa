"""Options shared by several commands."""

from __future__ import annotations

import click

library_option = click.option(
    "--library",
    "library",
    type=click.Path(file_okay=False),
    default=None,
    envvar="LOOKALIKE_LIBRARY",
    show_envvar=True,
    help="Library directory [default: ~/.local/share/lookalike/library].",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
