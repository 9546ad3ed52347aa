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
