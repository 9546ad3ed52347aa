"""``lookalike serve`` as a real server process, and the dev images it serves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.support.data import REPO, dev_images


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

    def post_image(
        self,
        path: str,
        data: bytes,
        fields: dict | None = None,
        csrf: bool = True,
        headers: dict | None = None,
    ):
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
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})}
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
