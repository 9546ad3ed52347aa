"""An indexing run's progress, as another process (the web app) sees it (indexer.progress)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from lookalike.indexer import progress
from lookalike.indexer.batch import BatchIndexer, IndexOptions
from lookalike.indexer.store.library import Library
from tests.support.fakes import FakeEmbedder, random_image


def _write(root, **doc):
    (root / progress.FILE_NAME).write_text(json.dumps(doc))


def test_only_a_live_fresh_run_of_another_process_counts(tmp_path, other_process):
    assert progress.running_elsewhere(tmp_path) is None  # no file
    now = time.time()
    pid = other_process.pid
    _write(tmp_path, pid=pid, state="running", done=5, total=9, started=now, updated=now)
    assert progress.running_elsewhere(tmp_path)["done"] == 5
    later = now + progress.STALE_S + 1  # a frozen run
    assert progress.running_elsewhere(tmp_path, now=later) is None
    _write(tmp_path, pid=os.getpid(), started=now, updated=now)  # this process: its own job
    assert progress.running_elsewhere(tmp_path) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    _write(tmp_path, pid=int(dead.stdout), started=now, updated=now)  # killed mid-run
    assert progress.running_elsewhere(tmp_path) is None
    (tmp_path / progress.FILE_NAME).write_text("{half a file")
    assert progress.running_elsewhere(tmp_path) is None


def test_a_run_reports_while_it_runs_and_clears_after(tmp_path):
    for i in range(5):
        random_image(tmp_path / "photos" / f"{i}.png", i)
    seen = []

    def on_progress(done, total):
        seen.append(json.loads((tmp_path / "lib" / progress.FILE_NAME).read_text()))

    embedder = FakeEmbedder()
    with Library.create(tmp_path / "lib", embedder.info) as lib:
        indexer = BatchIndexer(lib, embedder, IndexOptions(progress=False), on_progress)
        assert indexer.run([str(tmp_path / "photos")]).added == 5
    assert seen[0]["state"] == "running" and (seen[0]["done"], seen[0]["total"]) == (0, 5)
    assert (seen[-1]["done"], seen[-1]["total"]) == (5, 5)
    assert seen[-1]["pid"] == os.getpid()
    assert seen[-1]["folders"] == [str(tmp_path / "photos")]
    assert not (tmp_path / "lib" / progress.FILE_NAME).exists()
