"""update_library, the one "update this library from these folders" use case, through its
two callers: the `lookalike index` command and the web app's index jobs (real default
model, real copy model, real SQLite)."""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lookalike.cli import main
from lookalike.indexer.errors import LibraryBusy, ModelUnavailable
from lookalike.indexer.models.copy_model import CopyModelInfo
from lookalike.indexer.pipeline import ModelChoice, update_library
from lookalike.indexer.store import copy_vectors
from lookalike.indexer.store import library as library_module
from lookalike.indexer.store.library import COPY_MODEL_META, Library
from lookalike.webapp import create_app

CSRF = {"X-Requested-With": "test"}
COUNTS = ("added", "updated", "moved", "copied", "removed", "unchanged", "labelled", "embedded")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir) -> Path:
    """first/ and second/: three dev images of one class each, in a class folder."""
    root = tmp_path_factory.mktemp("pipeline")
    classes = sorted((data_dir / "images").iterdir())[:2]
    for part, folder in zip(("first", "second"), classes, strict=True):
        for src in sorted(folder.glob("*.jpg"))[:3]:
            target = root / part / folder.name / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return root


def index(*args: str) -> dict:
    result = CliRunner().invoke(main, ["index", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def web_job(library: Path, folder: Path) -> dict:
    app = create_app(library, test_config={"TESTING": True})
    client = app.test_client()
    body = {"folder": str(folder), "labels_from_folders": True}
    assert client.post("/api/index-job", json=body, headers=CSRF).status_code == 202
    app.extensions["lookalike.jobs"].wait(300)
    status = client.get("/api/index-job").get_json()
    app.extensions["lookalike"].close()
    assert status["state"] == "done", status
    return status["summary"]


@pytest.fixture
def writer_locks(monkeypatch):
    """How many times a writer lock was taken, and whether another writer was refused
    when the copy-descriptor pass began."""
    seen = {"taken": 0, "refused_during_copies": []}
    flock, build = fcntl.flock, copy_vectors.build

    def counting_flock(f, operation):
        flock(f, operation)
        if operation & fcntl.LOCK_EX:  # taken (a refused attempt raised)
            seen["taken"] += 1

    def checking_build(lib, model, **kwargs):
        with Library.open(lib.root, readonly=False) as other:
            try:
                other.lock()
            except LibraryBusy:
                seen["refused_during_copies"].append(True)
            else:
                other.unlock()
                seen["refused_during_copies"].append(False)
        return build(lib, model, **kwargs)

    monkeypatch.setattr(library_module.fcntl, "flock", counting_flock)
    monkeypatch.setattr(copy_vectors, "build", checking_build)
    return seen


def test_the_cli_and_a_web_job_make_the_same_update(photos, tmp_path):
    cli_lib, web_lib = tmp_path / "cli", tmp_path / "web"
    for lib in (cli_lib, web_lib):
        index(str(photos / "first"), "--library", str(lib), "--labels-from-folders")
    by_cli = index(str(photos / "second"), "--library", str(cli_lib), "--labels-from-folders")
    by_web = web_job(web_lib, photos / "second")
    assert set(by_web) == set(by_cli)
    assert {k: by_web[k] for k in COUNTS} == {k: by_cli[k] for k in COUNTS}
    assert (by_cli["added"], by_cli["labelled"], by_cli["devices"]) == (3, 3, ["cpu"])
    assert by_web["skipped"] == by_cli["skipped"] == []
    again = index(str(photos / "second"), "--library", str(cli_lib))
    assert (again["added"], again["unchanged"], again["embedded"]) == (0, 3, 0)


def test_an_update_takes_the_writer_lock_once_through_the_copy_pass(photos, tmp_path, writer_locks):
    lib = tmp_path / "library"
    first = index(str(photos / "first"), "--library", str(lib), "--copy-detection")
    assert first["copy_descriptors"] == {"computed": 3, "total": 3, "skipped": []}
    assert writer_locks["taken"] == 1 and writer_locks["refused_during_copies"] == [True]
    by_web = web_job(lib, photos / "second")
    assert by_web["copy_descriptors"] == {"computed": 3, "total": 6, "skipped": []}
    assert writer_locks["taken"] == 2 and writer_locks["refused_during_copies"] == [True, True]


def test_a_model_that_cannot_load_leaves_no_library_behind(photos, tmp_path):
    lib = tmp_path / "new"
    result = CliRunner().invoke(main, ["index", str(photos), "--library", str(lib),
                                       "--model", "resnet-9000"])  # fmt: skip
    assert result.exit_code == 1 and "unknown model 'resnet-9000'" in result.output
    assert not (lib / "catalog.sqlite").exists()


def test_a_server_without_the_libraries_copy_model_indexes_without_descriptors(photos, tmp_path):
    lib = tmp_path / "library"
    index(str(photos / "first"), "--library", str(lib), "--copy-detection", "--quiet")
    with Library.open(lib, readonly=False) as opened, opened.catalog.transaction() as conn:
        gone = CopyModelInfo("sscd_distilled", "0" * 16, 512)  # no such file on this machine
        opened.catalog.set_meta(COPY_MODEL_META, gone.to_json(), conn)
    with pytest.raises(ModelUnavailable, match="--no-copy-detection"):
        update_library(lib, [photos / "second"])
    with Library.open(lib) as opened:
        assert opened.catalog.count() == 3  # refused before anything was written
    summary = update_library(lib, [photos / "second"], copies_optional=True)
    assert summary.copies is None and summary.index.added == 3
    off = update_library(lib, [photos / "second"], ModelChoice(copy_detection=False))
    assert off.copies is None
    with Library.open(lib) as opened:
        assert opened.copy_model_info() is None and opened.catalog.count_copy_vectors() == 0
