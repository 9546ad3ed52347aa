"""The lean default install, simulated through the real CLI: torch, timm, torchvision,
open_clip and ray are made unimportable in its subprocess (an import hook, as if the
extras were not installed), and every attempt to import them is logged.

The default path (index, search, tag, clusters, evaluate, serve, ...) must never try;
a feature that needs an extra says which, in one line naming the pip command.
(scripts/check_wheel.sh checks a real lean install from the wheel.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest

from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.library import Library
from tests.support.cli import run_cli
from tests.support.data import DATA, REPO

HEAVY = ("torch", "timm", "torchvision", "open_clip", "ray")

# Installed as sitecustomize (imported by site at start-up) through PYTHONPATH.
BLOCKER = '''
import os, sys

_BLOCKED = set(os.environ["LOOKALIKE_TEST_BLOCK"].split(","))
_LOG = os.environ["LOOKALIKE_TEST_BLOCK_LOG"]


class _Blocker:
    """Finds the blocked packages first and says they are not there."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            with open(_LOG, "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


class Lean:
    """The environment of a CLI run without the extras, and the log of attempts."""

    def __init__(self, root: Path) -> None:
        (root / "hook").mkdir(parents=True)
        (root / "hook" / "sitecustomize.py").write_text(BLOCKER)
        self.log = root / "attempts.log"
        self.env = {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(root / "hook"), os.environ.get("PYTHONPATH")])
            ),
            "LOOKALIKE_TEST_BLOCK": ",".join(HEAVY),
            "LOOKALIKE_TEST_BLOCK_LOG": str(self.log),
            # A cache of its own: the first run builds the ONNX graphs without torch.
            "LOOKALIKE_CACHE": str(root / "cache"),
        }

    def attempts(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_cli(*args, env=self.env, check=check)


@pytest.fixture
def lean(tmp_path) -> Lean:
    """Per test: its own log of attempts, and its own cache of the ONNX graphs."""
    return Lean(tmp_path / "lean")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir) -> Path:
    """labelled/<class>/ for three classes; unlabelled/ with two more classes."""
    root = tmp_path_factory.mktemp("photos")
    for c in ("Faces", "Leopards", "accordion"):
        (root / "labelled" / c).mkdir(parents=True)
        for f in sorted((DATA / "images" / c).glob("*.jpg"))[:5]:
            (root / "labelled" / c / f.name).symlink_to(f)
    (root / "unlabelled").mkdir()
    for c in ("grand_piano", "trilobite"):
        for f in sorted((DATA / "images" / c).glob("*.jpg"))[:5]:
            (root / "unlabelled" / f"{c}_{f.name}").symlink_to(f)
    return root


def test_the_default_path_never_imports_a_heavy_package(lean, photos, tmp_path):
    lib = str(tmp_path / "lib")
    assert lean.run("--help").returncode == 0
    lean.run("index", str(photos / "labelled"), "--labels-from-folders", "--library", lib, "-q")
    lean.run("index", str(photos / "unlabelled"), "--library", lib, "-q")
    assert sorted(p.suffix for p in Path(lean.env["LOOKALIKE_CACHE"], "onnx").iterdir()) == [
        ".onnx",
        ".onnx",
    ]  # the graphs were built in the lean run
    query = str(sorted((photos / "labelled" / "Leopards").iterdir())[0])
    for mode in ([], ["--no-rerank"], ["--object"]):
        doc = json.loads(lean.run("search", query, "--library", lib, "--json", *mode).stdout)
        assert doc[0]["results"][0]["path"].endswith(Path(query).name), mode
    assert re.search(r"tagged \d+ of 10 unlabelled", lean.run("tag", "--library", lib).stdout)
    assert json.loads(lean.run("clusters", "--library", lib, "--json").stdout)
    lean.run("evaluate", "--library", lib, "--folds", "2", "--report", str(tmp_path / "r.html"))
    lean.run("duplicates", "--library", lib)
    lean.run("info", "--library", lib)
    _serve_and_search(lean, lib, query)
    assert lean.attempts() == []


def _serve_and_search(lean: Lean, lib: str, query: str) -> None:
    """`lookalike serve` answers a robust image search and a page, then stops."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--library", lib, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **lean.env),
    )
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.append(line)
            if re.search(r"on http://127\.0\.0\.1:\d+/", line):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), "".join(found)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", "".join(found)).group(1)  # type: ignore[union-attr]
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="mode"\r\n\r\nrobust\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"'
                "\r\nContent-Type: image/jpeg\r\n\r\n"
            ).encode()
            + Path(query).read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            url + "/api/search",
            body,
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "X-Requested-With": "test",
            },
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            results = json.loads(response.read())["results"]
        assert results[0]["path"] == query
        with urllib.request.urlopen(url + f"/api/images/{results[0]['id']}", timeout=120) as r:
            assert r.status == 200
        with urllib.request.urlopen(url + "/", timeout=120) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(30)


def _one_line(proc: subprocess.CompletedProcess, extra: str) -> str:
    """The one line on stderr (exit 1) naming the extra and its pip command."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    pattern = rf"Error: .+ needs the {extra} extra \(\S+ is not installed\): "
    pattern += rf'pip install "lookalike\[{extra}\]"'
    assert re.fullmatch(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "extra", "feature"),
    [
        (["--model", "openclip:ViT-S-32-alt", "--weights", "w.pt"], "clip", "openclip:ViT-S-32"),
        (["--device", "cuda"], "gpu", "--device cuda"),
        (["--model", "efficientnet-lite0:torch"], "gpu", "efficientnet-lite0:torch"),
    ],
)
def test_a_missing_extra_is_one_line_and_writes_nothing(
    lean, photos, tmp_path, args, extra, feature
):
    lib = tmp_path / "lib"
    proc = lean.run("index", str(photos / "unlabelled"), "--library", str(lib), *args, check=False)
    assert feature in _one_line(proc, extra)
    assert not lib.exists()


def test_ray_without_the_ray_extra_is_one_line(lean, photos, tmp_path):
    lib = tmp_path / "lib"
    proc = lean.run("index", str(photos / "unlabelled"), "--library", str(lib), "--engine", "ray",
                    check=False)  # fmt: skip
    assert "--engine ray" in _one_line(proc, "ray")
    if lib.exists():  # the CLI opens the library before the engine starts: still empty
        with Library.open(lib) as opened:
            assert opened.catalog.count() == 0


def test_auto_without_torch_is_the_cpu(lean, photos, tmp_path):
    doc = json.loads(
        lean.run("index", str(photos / "unlabelled"), "--library", str(tmp_path / "lib"),
                 "--device", "auto", "--json").stdout
    )  # fmt: skip
    assert doc["embedded"] == 10 and doc["devices"] == ["cpu"]
    assert [a for a in lean.attempts() if a.split(".")[0] != "torch"] == []


def test_a_clip_library_without_the_clip_extra_is_one_line(lean, tmp_path):
    """Text search and the web app on a library someone built with a CLIP model."""
    info = ModelInfo(
        name="openclip:ViT-S-32-alt", dim=256, preprocessing="p", weights_hash="0",
        descriptor="clip-l2", extra={"weights": str(tmp_path / "w.pt")}, text_encoder=True,
    )  # fmt: skip
    Library.create(tmp_path / "clip", info).close()
    for args in (["search", "--text", "a red car"], ["serve", "--port", "0"]):
        proc = lean.run(*args, "--library", str(tmp_path / "clip"), check=False)
        assert "openclip:ViT-S-32-alt" in _one_line(proc, "clip")
