"""`lookalike serve` as a real server process: search over HTTP, live pick-up of a
concurrent `lookalike index` run, refusals, and a clear error without a library."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.server import ServerProcess, copy_slice


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serve")
    copy_slice(base / "photos", classes=3, per_class=4)
    run_cli("index", str(base / "photos"), "--library", str(base / "lib"), "--labels-from-folders")
    return base / "lib"


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def test_search_over_http(server, library):
    status, health = server.get("/api/health")
    assert status == 200 and health["images"] == 12
    query = dev_images(3, 4)[5]
    status, doc = server.post_image("/api/search", query.read_bytes(), {"k": "3"})
    assert status == 200
    assert doc["results"][0]["path"].endswith(f"{query.parent.name}/{query.name}")
    assert doc["results"][0]["label"] == query.parent.name


def test_refusals_over_http(server):
    query = dev_images(1, 1)[0].read_bytes()
    status, doc = server.post_image("/api/search", query, {"k": "2"}, csrf=False)  # as curl
    assert status == 200 and len(doc["results"]) == 2
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    status, doc = server.post_image("/api/search", query, csrf=False, headers=cross_site)
    assert status == 403 and "cross-site" in doc["error"]
    status, doc = server.post_image("/api/search", b"not an image")
    assert status == 400 and "not a readable image" in doc["error"]
    status, doc = server.get("/api/health", headers={"Host": "attacker.example"})
    assert status == 400 and "unknown host" in doc["error"]
    status, doc = server.post_image("/api/search", b"\xff" * (33 * 1024 * 1024))
    assert status == 413 and "too large" in doc["error"]


def test_a_concurrent_index_run_is_picked_up_without_restart(server, library, tmp_path):
    new = copy_slice(tmp_path / "more", classes=1, per_class=3, skip_classes=5)
    run_cli("index", str(tmp_path / "more"), "--library", str(library), "--labels-from-folders")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, health = server.get("/api/health")
        if health["images"] == 15:
            break
        time.sleep(0.2)
    assert health["images"] == 15
    status, doc = server.post_image("/api/search", new[0].read_bytes(), {"k": "1"})
    assert status == 200
    assert doc["results"][0]["path"] == str(new[0])


def test_serve_without_a_library_is_one_clear_line(tmp_path):
    proc = run_cli("serve", "--library", str(tmp_path / "nothing"), "--port", "0", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Lookalike library" in lines[0]
