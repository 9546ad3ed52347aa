"""Options shared by several commands."""

from __future__ import annotations

import click

# Where ``lookalike --library DIR COMMAND`` keeps DIR for the command's own option.
GIVEN_FIRST = "lookalike.library"


def _library(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The command's --library; else the one given before the command's name (which
    beats LOOKALIKE_LIBRARY, as a command-line option does); else the variable."""
    if ctx.get_parameter_source(param.name or "library") == click.core.ParameterSource.COMMANDLINE:
        return value
    return ctx.find_root().meta.get(GIVEN_FIRST, value)


library_option = click.option(
    "--library",
    "library",
    type=click.Path(file_okay=False),
    default=None,
    envvar="LOOKALIKE_LIBRARY",
    show_envvar=True,
    callback=_library,
    help="Library directory [default: ~/.local/share/lookalike/library].",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
