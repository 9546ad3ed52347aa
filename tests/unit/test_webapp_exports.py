"""Label exports as downloads (GET /api/labels/export), via Flask's test client."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from tests.support.webapp import build_library, copy_library, make_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    source = build_library(tmp_path_factory.mktemp("weblib"))
    app = make_app(copy_library(source, tmp_path_factory.mktemp("copy") / "library"))
    return app.test_client()


def test_exports_download_in_each_format(client):
    labels = {row["label"]: row["count"] for row in client.get("/api/labels").json["labels"]}
    total = sum(labels.values())

    got = client.get("/api/labels/export?format=csv")
    assert got.status_code == 200 and got.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert got.headers["Content-Disposition"] == 'attachment; filename="labels.csv"'
    rows = list(csv.DictReader(io.StringIO(got.get_data(as_text=True))))
    assert len(rows) == total and {r["label"] for r in rows} == set(labels)

    got = client.get("/api/labels/export?format=coco")
    doc = json.loads(got.get_data())
    assert got.headers["Content-Type"] == "application/json"
    assert got.status_code == 200 and len(doc["annotations"]) == total
    assert {c["name"] for c in doc["categories"]} == set(labels)
    assert all(im["file_name"].startswith("/") for im in doc["images"])

    got = client.get("/api/labels/export?format=yolo")
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(got.get_data())).namelist()
    assert "labels-yolo/classes.txt" in names and "labels-yolo/data.yaml" in names
    assert sum(n.startswith("labels-yolo/labels/") for n in names) == total

    bad = client.get("/api/labels/export?format=xml")
    assert bad.status_code == 400 and "unknown export format" in bad.json["error"]
