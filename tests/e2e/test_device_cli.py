"""`lookalike index --device`: the real CLI picks the device and reports it."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("device") / "photos"
    root.mkdir()
    for p in dev_images(classes=3, per_class=1):
        shutil.copy2(p, root / f"{p.parent.name}-{p.name}")
    return root


def test_cuda_without_a_gpu_is_one_line_and_writes_nothing(photos, tmp_path):
    if _cuda():
        pytest.skip("this machine has a CUDA GPU")
    lib = tmp_path / "lib"
    proc = run_cli("index", str(photos), "--library", str(lib), "--device", "cuda", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot embed on cuda" in lines[0] and "--device cpu" in lines[0]
    assert not lib.exists()


def test_auto_embeds_where_torch_can_and_says_so(photos, tmp_path):
    lib = tmp_path / "lib"
    out = run_cli("index", str(photos), "--library", str(lib), "--device", "auto", "--json")
    summary = json.loads(out.stdout)
    assert summary["embedded"] == 3
    assert summary["devices"] == ["cuda" if _cuda() else "cpu"]
    again = run_cli("index", str(photos), "--library", str(lib), "-q")  # default: cpu
    assert "3 unchanged" in again.stdout and "embedded on" not in again.stdout
