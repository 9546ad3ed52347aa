"""A damaged index file (truncated, deleted, random bytes) through the real CLI: searches
still find the library's images, `info` says so, and the next index run rebuilds from
the catalog instead of writing a generation that holds only the new images."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images


def _damage(path, how):
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif how == "deleted":
        path.unlink()
    else:  # the same size, other bytes
        path.write_bytes(os.urandom(path.stat().st_size))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A library of 6 dev images (and one more image kept aside)."""
    root = tmp_path_factory.mktemp("damage")
    photos = root / "photos"
    photos.mkdir()
    images = dev_images(classes=2, per_class=4)
    for i, p in enumerate(images[:6]):
        shutil.copy(p, photos / f"{i}-{p.name}")
    run_cli("index", str(photos), "--library", str(root / "lib"), "-q")
    return root, photos, images[6]


@pytest.mark.parametrize("how", ["truncated", "deleted", "random"])
def test_damaged_index_is_detected_and_rebuilt(indexed, tmp_path, how):
    root, photos, extra = indexed
    lib = tmp_path / "lib"
    shutil.copytree(root / "lib", lib)
    index_file = next(lib.glob("index-*.faiss"))
    _damage(index_file, how)
    query = sorted(photos.iterdir())[0]

    found = run_cli("search", str(query), "--library", str(lib), "--json", "--no-rerank")
    results = json.loads(found.stdout)[0]["results"]
    assert len(results) == 6 and results[0]["path"] == str(query)
    assert "rebuilt in memory from the catalog" in found.stderr

    info = json.loads(run_cli("info", "--library", str(lib), "--json").stdout)
    if how != "random":  # a stat tells these; random bytes of the same size need a read
        assert info["index"]["problem"]
        text = run_cli("info", "--library", str(lib)).stdout
        assert "DAMAGED" in text

    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(extra, more / extra.name)
    done = run_cli("index", str(more), "--library", str(lib), "-q")
    assert "rebuilding the index from the catalog" in done.stderr
    found = run_cli("search", str(query), "--library", str(lib), "--json", "--no-rerank")
    results = json.loads(found.stdout)[0]["results"]
    assert len(results) == 7 and results[0]["path"] == str(query)
    assert "rebuilt" not in found.stderr
