"""The command group: its listing, and commands loaded only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from lookalike.cli import main
from lookalike.commands import COMMANDS

COMMANDS_DIR = Path(__file__).resolve().parents[2] / "lookalike" / "commands"


def test_every_command_module_is_listed_with_its_own_first_sentence():
    modules = {p.stem for p in COMMANDS_DIR.glob("*.py")} - {"__init__", "options"}
    assert set(COMMANDS) == modules
    ctx = click.Context(main)
    for name, line in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == line


def test_help_lists_every_command_and_an_unknown_one_is_a_usage_error():
    out = CliRunner().invoke(main, ["--help"]).output
    assert all(f"\n  {name} " in out for name in COMMANDS)
    bad = CliRunner().invoke(main, ["indx"])
    assert bad.exit_code == 2 and "No such command 'indx'" in bad.output


def test_a_command_loads_only_its_own_module():
    probe = (
        "import sys; from click.testing import CliRunner; from lookalike.cli import main; "
        "CliRunner().invoke(main, ['info', '--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('lookalike.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['lookalike.commands.info', 'lookalike.commands.options']"


def test_library_given_before_the_command_beats_the_variable_and_after_it_wins(tmp_path):
    """``lookalike --library DIR COMMAND`` works as the command's own --library does,
    nested groups (labels list) included; the command's own option still has the last
    word. Each library is missing, so the error names the one chosen."""
    first, own, variable = (str(tmp_path / name) for name in ("first", "own", "variable"))
    env = {"LOOKALIKE_LIBRARY": variable}

    def chosen(*args: str) -> str:
        out = CliRunner().invoke(main, list(args), env=env)
        assert out.exit_code == 1, out.output
        return out.output.split("no Lookalike library at ")[1].split(";")[0]

    assert chosen("info") == variable
    assert chosen("--library", first, "info") == first
    assert chosen("--library", first, "labels", "list") == first
    assert chosen("--library", first, "info", "--library", own) == own


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`lookalike ... | head -1`: the closed pipe ends the command with status 141 (as a
    shell reports it) and no "Error: Broken pipe" line."""
    probe = (
        "import click; import lookalike.cli as cli\n"
        "@click.command()\n"
        "def loud():\n"
        "    for _ in range(100_000):\n"
        "        click.echo('x' * 80)\n"
        "cli.main.get_command = lambda ctx, name: loud\n"
        "cli.main(['loud'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(1) == b"x"
    proc.stdout.close()  # the reader goes away with 8 MB still to come
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
