"""Offline folders and names that are not UTF-8, as the web app and its JSON API see them
(Flask's test client over a real library built by the real `lookalike index`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from click.testing import CliRunner

from lookalike.cli import main
from lookalike.webapp import create_app
from tests.support.data import dev_images

CSRF = {"X-Requested-With": "test"}


def _photos(base: Path) -> Path:
    photos = base / "photos" / "things"
    photos.mkdir(parents=True)
    for src in dev_images(1, 3):
        shutil.copy(src, photos / src.name)
    return photos.parent


def _index(library: Path, folder: Path) -> dict:
    result = CliRunner().invoke(main, ["index", str(folder), "--library", str(library), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_api_marks_the_images_of_an_offline_folder(tmp_path):
    photos = _photos(tmp_path)
    library = tmp_path / "library"
    _index(library, photos)
    photos.rename(tmp_path / "unplugged")
    assert _index(library, photos)["removed"] == 0
    app = create_app(library, test_config={"TESTING": True})
    client = app.test_client()
    facts = client.get("/api/library").get_json()
    assert facts["images"] == 3
    assert facts["offline"] == {"images": 3, "folders": [str(photos / "things")]}
    cards = client.get("/api/images").get_json()["images"]
    assert [c["offline"] for c in cards] == [True, True, True]
    assert client.get(f"/api/images/{cards[0]['id']}").get_json()["offline"] is True
    app.extensions["lookalike"].close()


def test_a_web_index_job_skips_a_name_that_is_not_utf8_and_indexes_the_rest(tmp_path):
    photos = _photos(tmp_path)
    bad = os.fsencode(photos / "things") + b"/caf\xe9.jpg"
    shutil.copy(dev_images(2, 1)[-1], bad)
    library = tmp_path / "library"
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(dev_images(3, 1)[-1], first / "one.jpg")
    _index(library, first)  # the web app serves an existing library
    app = create_app(library, test_config={"TESTING": True})
    client = app.test_client()
    body = {"folder": str(photos), "labels_from_folders": True}
    assert client.post("/api/index-job", json=body, headers=CSRF).status_code == 202
    app.extensions["lookalike.jobs"].wait(300)
    status = client.get("/api/index-job").get_json()
    app.extensions["lookalike"].close()
    assert status["state"] == "done", status
    assert status["summary"]["added"] == 3
    skipped = status["summary"]["skipped"]
    assert [s["path"] for s in skipped] == [f"{photos}/things/caf\\xe9.jpg"]
    assert "not valid UTF-8" in skipped[0]["reason"]
