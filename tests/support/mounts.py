"""File systems for fault tests: a tiny tmpfs (a full disk) and a read-only bind mount.

Both need root (tests run as root in this project's containers). Without it, the
callers fall back where they can (a read-only copy by chmod works for a normal user)
or skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def small_disk(path: Path, kib: int) -> Iterator[Path]:
    """A tmpfs of ``kib`` KiB at ``path`` for the block (skips the test without mount)."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextmanager
def read_only(source: Path, at: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``at``: a read-only bind mount as root, else a copy's
    permissions removed (which stops a normal user, not root)."""
    at.mkdir(parents=True, exist_ok=True)
    if _mount("--bind", "-o", "ro", str(source), str(at)):
        if os.access(at, os.W_OK):  # older kernels take "ro" only on a remount
            _mount("-o", "remount,bind,ro", str(at))
        try:
            yield at
        finally:
            subprocess.run(["umount", "-l", str(at)], check=True)
        return
    if os.geteuid() == 0:
        pytest.skip("a read-only bind mount failed, and chmod does not stop root")
    subprocess.run(["cp", "-a", f"{source}/.", str(at)], check=True)
    subprocess.run(["chmod", "-R", "a-w", str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(at)], check=True)
