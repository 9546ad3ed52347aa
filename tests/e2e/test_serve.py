"""`lookalike serve` as a real server process: search over HTTP, live pick-up of a
concurrent `lookalike index` run, refusals, and a clear error without a library."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, dev_images, run_cli


class ServerProcess:
    """`lookalike serve --port 0` in a subprocess; knows its URL once it listens."""

    def __init__(self, library: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "serve", "--library", str(library), "--port", "0"]
            + list(extra),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.url = ""

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                match = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(120):
            self.stop()
            raise AssertionError("server did not start:\n" + "".join(self.lines))

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict]:
        return self._open(urllib.request.Request(self.url + path, headers=headers or {}))

    def post_image(self, path: str, data: bytes, fields: dict | None = None, csrf: bool = True):
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (fields or {}).items()
        ]
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            'name="image"; filename="q.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        body = "".join(parts).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if csrf:
            headers["X-Requested-With"] = "test"
        request = urllib.request.Request(self.url + path, body, headers, method="POST")
        return self._open(request)

    @staticmethod
    def _open(request) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def copy_slice(target: Path, classes: int, per_class: int, skip_classes: int = 0) -> list[Path]:
    out = []
    for path in dev_images(skip_classes + classes, per_class)[skip_classes * per_class :]:
        dest = target / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
        out.append(dest)
    return out


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
    status, doc = server.post_image("/api/search", query, csrf=False)
    assert status == 403 and "X-Requested-With" in doc["error"]
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
