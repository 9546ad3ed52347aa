"""The real ``lookalike`` command line as a subprocess, timed, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple


class Ran(NamedTuple):
    """What a successful command printed, and how long the whole process took."""

    stdout: str
    seconds: float  # wall time
    cpu_seconds: float = 0.0  # user + system time of the process (and its children)

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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "lookalike", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"lookalike {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return Ran(proc.stdout, seconds, cpu)


@contextmanager
def served(library: Path, timeout: float = 600) -> Iterator[str]:
    """``lookalike serve --port 0`` on ``library``: its base URL once it listens (read
    from what it prints, no guessed delay); stopped on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--library", str(library), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: list[str] = []
    found = threading.Event()
    url = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
            if match and not found.is_set():
                url.append(match.group(1))
                found.set()
        found.set()  # the server ended

    threading.Thread(target=read, daemon=True).start()
    try:
        found.wait(timeout)
        if not url:
            sys.exit("lookalike serve did not start:\n" + "".join(lines)[-3000:])
        yield url[0]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
