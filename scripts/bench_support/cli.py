"""The real ``lookalike`` command line as a subprocess, timed, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple


class Ran(NamedTuple):
    """What a successful command printed, and how long the whole process took."""

    stdout: str
    seconds: float

    def last_json(self) -> Any:
        """The JSON document on the last line of stdout (the CLI's ``--json`` output)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def cli(*args: str, library: Path | None = None, timeout: float | None = None) -> Ran:
    """Run ``python -m lookalike ARGS`` (on ``library`` when given); a failure stops the
    benchmark with the command and the end of its stderr."""
    env = dict(os.environ)
    if library is not None:
        env["LOOKALIKE_LIBRARY"] = str(library)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lookalike", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"lookalike {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return Ran(proc.stdout, seconds)
