"""A library on a read-only mount (a read-only bind mount as root, a chmod -R a-w copy
otherwise): info, search, labels list and serve work; commands that write say so in
one line. Two states of the catalog: closed cleanly (WAL mode, no -wal file) and
copied while a writer had it open (its -wal and -shm beside it)."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from lookalike.indexer.store.catalog import Catalog
from tests.support.cli import run_cli
from tests.support.mounts import read_only
from tests.support.server import ServerProcess, copy_slice


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ro")
    copy_slice(root / "photos", classes=2, per_class=3)
    lib = root / "lib"
    run_cli("index", str(root / "photos"), "--library", str(lib), "-q")
    first = sorted((root / "photos").rglob("*.jpg"))[0]
    run_cli("labels", "set", str(first), "--as", "leopard", "--library", str(lib))
    return root, lib, first


def _snapshot(lib, target, open_writer):
    if not open_writer:
        shutil.copytree(lib, target)
        return
    writer = Catalog(lib / "catalog.sqlite")  # keeps the -wal and -shm files there
    writer.conn.execute("PRAGMA wal_autocheckpoint=0")
    writer.bump_content_version(writer.conn)
    writer.conn.commit()
    shutil.copytree(lib, target)
    writer.close()
    assert (target / "catalog.sqlite-wal").exists()


@pytest.mark.parametrize("open_writer", [False, True], ids=["closed", "with-wal"])
def test_read_only_library(built, tmp_path, open_writer):
    root, lib, first = built
    _snapshot(lib, tmp_path / "copy", open_writer)
    with read_only(tmp_path / "copy", tmp_path / "ro") as ro:
        where = ["--library", str(ro)]
        info = json.loads(run_cli("info", *where, "--json").stdout)
        assert info["images"] == 6 and info["labels"]["classes"] == {"leopard": 1}
        found = run_cli("search", str(first), *where, "--json")
        assert json.loads(found.stdout)[0]["results"][0]["path"] == str(first)
        listed = json.loads(run_cli("labels", "list", *where, "--json").stdout)
        assert "leopard" in json.dumps(listed)
        assert json.loads(run_cli("check", *where, "--json").stdout)["ok"]

        for args in (
            ["labels", "set", str(first), "--as", "cat"],
            ["index", str(root / "photos"), "-q"],
            ["tag"],
            ["check", "--repair"],
        ):
            proc = run_cli(*args, *where, check=False)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert proc.stderr.strip().count("\n") == 0 and "read-only" in proc.stderr

        server = ServerProcess(ro)
        try:
            status, doc = server.get("/api/library")
            assert status == 200 and doc["images"] == 6
            status, doc = server.post_image("/api/search", first.read_bytes())
            assert status == 200 and doc["results"][0]["path"] == str(first)
            status, doc = server.get("/api/labels")
            assert status == 200
            put = urllib.request.Request(
                f"{server.url}/api/images/1/label",
                json.dumps({"label": "cat"}).encode(),
                {"Content-Type": "application/json", "X-Requested-With": "test"},
                method="PUT",
            )
            status, doc = server._open(put)
            assert status == 403 and "read-only" in doc["error"]
        finally:
            server.stop()
        assert "Traceback" not in "".join(server.lines)
