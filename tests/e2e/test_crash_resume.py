"""SIGKILL in the middle of an index run, a rerun that resumes, searches meanwhile."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.support.cli import run_cli
from tests.support.data import DATA


def _count(library) -> int:
    path = library / "catalog.sqlite"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def _start_index(folder, library):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "index",
            str(folder),
            "--library",
            str(library),
            "-q",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_then_rerun_resumes_exactly_and_search_works_meanwhile(tmp_path):
    folder = DATA / "images"
    total = sum(1 for _ in folder.rglob("*.jpg"))
    library = tmp_path / "library"

    proc = _start_index(folder, library)
    deadline = time.monotonic() + 300
    while _count(library) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _count(library)
    assert 0 < killed_at < total, f"the kill did not land mid-run ({killed_at} of {total})"

    # The rerun resumes; a search runs while it indexes.
    rerun = _start_index(folder, library)
    query = sorted((folder / "Faces").glob("*.jpg"))[0]
    found = json.loads(
        run_cli("search", str(query), "--library", str(library), "-k", "1", "--json").stdout
    )
    assert rerun.poll() is None, "the rerun ended before the concurrent search finished"
    assert len(found[0]["results"]) == 1
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["added"] == total - killed_at
    assert summary["unchanged"] == killed_at

    con = sqlite3.connect(library / "catalog.sqlite")
    assert con.execute("SELECT COUNT(*) FROM images").fetchone()[0] == total
    assert con.execute("SELECT COUNT(DISTINCT path) FROM images").fetchone()[0] == total
    assert con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == total
    assert con.execute("SELECT COUNT(*) FROM pending_index").fetchone()[0] == 0

    # Every image finds itself first: a sample across classes, in one CLI call.
    sample = sorted(folder.rglob("*.jpg"))[:: max(1, total // 40)]
    results = json.loads(
        run_cli("search", *map(str, sample), "--library", str(library), "-k", "1", "--json").stdout
    )
    for q, r in zip(sample, results, strict=True):
        assert r["results"][0]["path"] == str(q) and r["results"][0]["score"] > 0.999


def test_second_writer_is_refused_while_one_indexes(tmp_path):
    library = tmp_path / "library"
    first = _start_index(DATA / "images", library)
    try:
        deadline = time.monotonic() + 300
        while _count(library) == 0 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None
        second = run_cli("index", str(DATA / "distractors"), "--library", str(library), check=False)
        assert second.returncode == 1
        assert "another process is writing" in second.stderr
    finally:
        first.kill()
        first.wait()
