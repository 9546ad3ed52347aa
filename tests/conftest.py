"""Shared test fixtures (the helpers the tests share are in tests/support/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import DATA


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
