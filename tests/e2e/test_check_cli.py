"""`lookalike check [--repair] [--json]` through the real CLI, over a damaged library."""

from __future__ import annotations

import json
import os
import shutil

from tests.support.cli import run_cli
from tests.support.data import dev_images


def test_check_finds_repairs_and_rechecks(tmp_path):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    photos.mkdir()
    for i, p in enumerate(dev_images(classes=2, per_class=2)):
        shutil.copy(p, photos / f"{i}-{p.name}")
    run_cli("index", str(photos), "--library", str(lib), "-q")
    clean = run_cli("check", "--library", str(lib))
    assert "ok " in clean.stdout

    index_file = next(lib.glob("index-*.faiss"))
    index_file.write_bytes(os.urandom(index_file.stat().st_size))  # same size, other bytes
    (lib / "index-0.faiss").write_bytes(b"old")  # an older generation left behind
    (lib / ".vectors.f16.123.tmp").write_bytes(b"")  # an interrupted write
    (lib / "notes.txt").write_text("mine")  # not the library's: reported, kept
    progress = '{"pid": 999999999, "state": "running", "done": 3, "total": 9}'
    (lib / "index-progress.json").write_text(progress)  # a run that was killed

    found = run_cli("check", "--library", str(lib), "--json", check=False)
    assert found.returncode == 1
    doc = json.loads(found.stdout)
    parts = {f["part"]: f for f in doc["findings"]}
    assert set(parts) == {"index", "orphans", "unknown"} and not doc["ok"]
    assert "checksum" in parts["index"]["problem"] and not parts["index"]["repaired"]
    assert index_file.exists() and (lib / "notes.txt").exists()  # a check changes nothing
    assert "index-progress.json" in parts["orphans"]["problem"]

    repaired = run_cli("check", "--repair", "--library", str(lib))
    assert "rebuilt index-" in repaired.stdout and "(repaired)" in repaired.stdout
    assert "NOT repaired" not in repaired.stdout
    left = {p.name for p in lib.iterdir()} - {".lock"}
    assert left == {"catalog.sqlite", "index-2.faiss", "notes.txt"}
    again = json.loads(run_cli("check", "--library", str(lib), "--json").stdout)
    assert again["ok"] and [f["part"] for f in again["findings"]] == ["unknown"]
    results = json.loads(
        run_cli("search", str(sorted(photos.iterdir())[0]), "--library", str(lib), "--json").stdout
    )[0]["results"]
    assert len(results) == 4


def test_check_of_a_damaged_catalog_exits_1_with_one_line(tmp_path):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    photos.mkdir()
    shutil.copy(dev_images(1, 1)[0], photos / "a.jpg")
    run_cli("index", str(photos), "--library", str(lib), "-q")
    catalog = lib / "catalog.sqlite"
    data = bytearray(catalog.read_bytes())
    data[4096 * 2 : 4096 * 3] = os.urandom(4096)  # one page of the tables overwritten
    catalog.write_bytes(bytes(data))
    found = run_cli("check", "--library", str(lib), check=False)
    assert found.returncode == 1 and "Traceback" not in found.stderr
    assert "catalog" in found.stdout + found.stderr
