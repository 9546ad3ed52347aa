"""Shared test fixtures: where the dev data lives, small image slices, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LOOKALIKE_DEV_DATA", REPO.parent / "shared/data/caltech101-dev"))


def dev_images(classes: int = 4, per_class: int = 5) -> list[Path]:
    """A deterministic slice of the dev data: the first images of the first classes."""
    out = []
    for folder in sorted((DATA / "images").iterdir())[:classes]:
        out.extend(sorted(folder.glob("*.jpg"))[:per_class])
    return out


def run_cli(*args: str, env: dict | None = None, check: bool = True, timeout: float = 600):
    """Run the real `lookalike` CLI as a subprocess; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "lookalike", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lookalike {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"dev data not found at {DATA} (set LOOKALIKE_DEV_DATA)")
    return DATA


@pytest.fixture(scope="module")
def one_faiss_thread():
    """OpenMP threads spin against each other on a loaded 2-core machine: k-means for
    small indexes took 27 s with 2 threads and 1 s with one."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture
def other_process():
    """A live process that is not this one (killed at the end, if the test has not)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()
