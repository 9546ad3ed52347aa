"""CLI commands, one module per verb; each module exports one click command."""

from lookalike.commands.index import index
from lookalike.commands.info import info
from lookalike.commands.search import search

COMMANDS = [index, search, info]
