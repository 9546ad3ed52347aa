"""The ``lookalike`` command: a thin layer over the library packages.

Each command's module is imported when it runs (see lookalike/commands/__init__.py),
and the packages import their heavy dependencies (torch, onnxruntime, faiss, OpenCV)
where they use them, so ``lookalike --help`` answers at once. Domain errors become one
line and exit 1.
"""

from __future__ import annotations

import errno
import importlib
import sqlite3

import click

from lookalike import __version__
from lookalike.commands import COMMANDS
from lookalike.indexer.errors import LookalikeError


class LookalikeGroup(click.Group):
    """Turns domain errors into one actionable line instead of a traceback; loads a
    command's module when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"lookalike.commands.{cmd_name}")
        return getattr(module, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMANDS' one-line helps, importing no command."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LookalikeError as e:
            raise click.ClickException(str(e)) from e
        except sqlite3.DatabaseError as e:
            raise click.ClickException(catalog_problem(e)) from e
        except BrokenPipeError:  # the reader went away (`lookalike ... | head`): no message
            _quiet_stdout()
            ctx.exit(141)  # 128 + SIGPIPE, as a shell reports a command a pipe stopped
        except OSError as e:
            raise click.ClickException(file_problem(e)) from e
        except KeyboardInterrupt:
            click.echo("interrupted; what was committed is kept, rerun to finish", err=True)
            ctx.exit(130)


@click.group(cls=LookalikeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lookalike")
@click.option(
    "--library",
    type=click.Path(file_okay=False),
    default=None,
    expose_value=False,
    callback=lambda ctx, _param, value: _given_first(ctx, value),
    help="Library directory for the command (as the command's own --library).",
)
def main() -> None:
    """Find look-alike images, tag them from a few labels, and review clusters.

    Every command works on a library directory: --library DIR (before or after the
    command's name), or the LOOKALIKE_LIBRARY environment variable, or
    ~/.local/share/lookalike/library.
    """


def _given_first(ctx: click.Context, value: str | None) -> None:
    from lookalike.commands.options import GIVEN_FIRST

    if value is not None:
        ctx.meta[GIVEN_FIRST] = value


def _quiet_stdout() -> None:
    """Points stdout at /dev/null, so Python's final flush of what is left for the
    closed pipe raises nothing more."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's runner): nothing to flush
        pass
    finally:
        os.close(devnull)


def catalog_problem(e: sqlite3.DatabaseError) -> str:
    """One line for an SQLite error that reached the command line."""
    if e.sqlite_errorname == "SQLITE_FULL":
        return f"the disk is full ({e}): free some space and rerun; what was committed is kept"
    return (
        f"the library's catalog cannot be used: {e}. `lookalike check` says what it finds; "
        "a damaged catalog.sqlite is restored from a backup"
    )


def file_problem(e: OSError) -> str:
    """One line for a file error that reached the command line."""
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"the disk is full{where}: free some space and rerun; what was committed is kept"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"no write access{where}: {e.strerror}"
    return f"{e.strerror or e}{where}"
