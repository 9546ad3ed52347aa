"""The command line every benchmark takes, and its machine-readable summary line."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parser(doc: str, json_summary: bool = True) -> argparse.ArgumentParser:
    """An argument parser whose --help is the benchmark's docstring; with
    ``json_summary``, a --json flag (see ``emit``)."""
    out = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if json_summary:
        out.add_argument("--json", action="store_true", help="last line: the figures as JSON")
    return out


def emit(args: argparse.Namespace, figures: Any) -> None:
    """Print the figures as one JSON line, the last one, when --json asked for it."""
    if args.json:
        print(json.dumps(figures))
