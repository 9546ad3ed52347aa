"""Faults around the CLI: a full disk, a corrupt catalog, a port in use. Each is one
line on stderr and exit 1, never a traceback, and a failed first run leaves no empty
library behind."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.mounts import small_disk


def _one_line_error(proc, *words):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0]


def _photos(folder, n):
    folder.mkdir()
    for i, p in enumerate(dev_images(classes=2, per_class=n)[: 2 * n]):
        shutil.copy(p, folder / f"{i}-{p.name}")
    return folder


def test_a_full_disk_is_one_line_and_a_failed_first_run_leaves_no_library(tmp_path):
    photos = _photos(tmp_path / "photos", 6)
    with small_disk(tmp_path / "disk", 160) as disk:
        lib = disk / "lib"
        proc = run_cli("index", str(photos), "--library", str(lib), "-q", check=False)
        _one_line_error(proc, "disk is full")
        assert not lib.exists()  # not an empty library that `info` would then show


def test_a_full_disk_in_an_existing_library_keeps_what_was_there(tmp_path):
    photos = _photos(tmp_path / "photos", 4)
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(sorted(photos.iterdir())[0], first / "a.jpg")
    with small_disk(tmp_path / "disk", 1024) as disk:
        lib = disk / "lib"
        run_cli("index", str(first), "--library", str(lib), "-q")
        filler = disk / "filler"
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
            while True:  # every last block
                f.write(b"\0" * 4096)
        proc = run_cli("index", str(photos), "--library", str(lib), "-q", check=False)
        _one_line_error(proc, "disk is full")
        filler.unlink()
        info = json.loads(run_cli("info", "--library", str(lib), "--json").stdout)
        assert info["images"] == 1
        assert json.loads(run_cli("check", "--library", str(lib), "--json").stdout)["ok"]


def test_a_corrupt_catalog_is_one_line(tmp_path):
    photos = _photos(tmp_path / "photos", 1)
    lib = tmp_path / "lib"
    run_cli("index", str(photos), "--library", str(lib), "-q")
    (lib / "catalog.sqlite").write_bytes(b"this is not a database" * 500)
    for args in (["info"], ["search", str(sorted(photos.iterdir())[0])], ["labels", "list"]):
        proc = run_cli(*args, "--library", str(lib), check=False)
        _one_line_error(proc, "catalog", "lookalike check")
    proc = run_cli("index", str(photos), "--library", str(lib), "-q", check=False)
    _one_line_error(proc, "catalog")


def test_a_port_in_use_is_one_line(tmp_path):
    photos = _photos(tmp_path / "photos", 1)
    lib = tmp_path / "lib"
    run_cli("index", str(photos), "--library", str(lib), "-q")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--library", str(lib), "--port", str(port), check=False)
    _one_line_error(proc, f"port {port}", "in use", "--port")


def test_terminal_escapes_in_file_names_are_printed_escaped(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    title = "\x1b]0;owned\x07\x1b[2J\x1b[31m"
    shutil.copy(dev_images(1, 1)[0], photos / f"ok{title}.jpg")
    (photos / f"bad{title}\nindexed in 0.0s.jpg").write_text("not a picture")
    lib = tmp_path / "lib"
    proc = run_cli("index", str(photos), "--library", str(lib), "-q")
    info = run_cli("info", "--library", str(lib))
    found = run_cli("search", str(photos / f"ok{title}.jpg"), "--library", str(lib))
    for out in (proc.stdout + proc.stderr, info.stdout, found.stdout):
        assert "\x1b" not in out and "\x07" not in out
    assert "skipping " in proc.stderr and "bad\\x1b]0;owned\\x07" in proc.stderr
    assert "\\nindexed in 0.0s.jpg" in proc.stderr  # no fake line of output
    assert "bad\\x1b]0;owned" in info.stdout and "ok\\x1b]0;owned\\x07\\x1b[2J" in found.stdout
    doc = json.loads(run_cli("info", "--library", str(lib), "--json").stdout)
    assert doc["errors"][0]["path"] == str(photos / f"bad{title}\nindexed in 0.0s.jpg")
