"""Only the allowed image formats are ever decoded: PostScript under an image name
never reaches Ghostscript, through the CLI (index, search) or the web app."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.webapp import CSRF, make_app, upload

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 100 100
%%EndComments
newpath 10 10 moveto 90 90 lineto stroke
showpage
%%EOF
"""

PACKAGES = ("indexer", "search", "classifier", "webapp", "lookalike")


def fake_gs(folder: Path) -> tuple[dict[str, str], Path]:
    """A `gs` first on PATH that logs each call (and fails, as a broken gs would)."""
    log = folder / "gs-calls.log"
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f'#!/bin/sh\necho "gs $*" >> {log}\nexit 1\n')
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def test_postscript_named_jpg_is_skipped_and_gs_never_runs(tmp_path):
    env, log = fake_gs(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in dev_images(1, 2):
        shutil.copy(src, photos / src.name)
    (photos / "drawing.jpg").write_bytes(EPS)
    library = str(tmp_path / "library")
    proc = run_cli("index", str(photos), "--library", library, env=env)
    assert "drawing.jpg" in proc.stdout + proc.stderr
    assert "not a readable image" in proc.stdout + proc.stderr
    assert not log.exists(), log.read_text()
    info = json.loads(run_cli("info", "--library", library, "--json", env=env).stdout)
    assert info["images"] == 2

    query = run_cli(
        "search", str(photos / "drawing.jpg"), "--library", library, env=env, check=False
    )
    assert query.returncode == 1
    assert "Traceback" not in query.stderr
    assert not log.exists()


def test_postscript_upload_and_library_file_never_reach_gs(tmp_path, monkeypatch):
    """The web app: an EPS upload is 400; an indexed file swapped for EPS gets no
    thumbnail (404), and gs is not called."""
    from tests.support.webapp import build_library, copy_library

    env, log = fake_gs(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    library = copy_library(build_library(tmp_path / "base"), tmp_path / "lib")
    client = make_app(library).test_client()
    response = client.post("/api/search", data=upload(EPS, name="x.jpg"), headers=CSRF)
    assert response.status_code == 400
    first = client.get("/api/images?limit=1").get_json()["images"][0]
    doc = client.get(f"/api/images/{first['id']}").get_json()
    path = Path(doc["path"])
    original, before = path.read_bytes(), path.stat()
    try:
        path.write_bytes(EPS.ljust(len(original), b"\n"))  # same size: passes the size check
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
        response = client.get(f"/api/images/{first['id']}/preview")
        assert response.status_code in (404, 409)
        assert "error" in response.get_json()
    finally:  # the session's photo as it was, mtime included (later tests serve it)
        path.write_bytes(original)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not log.exists()


def test_no_image_is_opened_outside_the_loader():
    """Every Image.open in the packages is lookalike.indexer.images.open_image's (the
    allow-list): a new call site elsewhere would skip it."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if path.name == "images.py" and path.parent.name == "indexer":
                continue
            if "Image.open(" in path.read_text():
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
