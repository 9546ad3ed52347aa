"""CLI commands, one module per verb; each module exports one click command."""

from lookalike.commands.clusters import clusters
from lookalike.commands.duplicates import duplicates
from lookalike.commands.evaluate import evaluate
from lookalike.commands.index import index
from lookalike.commands.info import info
from lookalike.commands.labels import labels
from lookalike.commands.search import search
from lookalike.commands.serve import serve
from lookalike.commands.tag import tag

COMMANDS = [index, search, info, serve, duplicates, clusters, labels, tag, evaluate]
