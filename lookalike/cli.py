"""The ``lookalike`` command: a thin layer over the library packages.

Heavy imports (torch, onnxruntime, faiss) happen inside the commands, so
``lookalike --help`` answers at once. Domain errors become one line and exit 1.
"""

from __future__ import annotations

import click

from lookalike import __version__
from lookalike.commands import COMMANDS
from lookalike.indexer.errors import LookalikeError


class LookalikeGroup(click.Group):
    """Turns domain errors into one actionable line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LookalikeError as e:
            raise click.ClickException(str(e)) from e
        except KeyboardInterrupt:
            click.echo("interrupted; what was committed is kept, rerun to finish", err=True)
            ctx.exit(130)


@click.group(cls=LookalikeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lookalike")
def main() -> None:
    """Find look-alike images, tag them from a few labels, and review clusters.

    Every command works on a library directory: --library DIR, or the
    LOOKALIKE_LIBRARY environment variable, or ~/.local/share/lookalike/library.
    """


for command in COMMANDS:
    main.add_command(command)
