"""A damaged index file under the web app (Flask's test client): searches still answer
from the catalog, with a warning in the log, and /api/library says what is wrong."""

from __future__ import annotations

import logging

from tests.support.webapp import CSRF, build_library, copy_library, make_app, photos, upload


def test_a_truncated_index_still_answers_searches_and_is_reported(tmp_path, caplog):
    source = build_library(tmp_path / "src")
    root = copy_library(source, tmp_path / "library")
    index_file = next(root.glob("index-*.faiss"))
    with open(index_file, "r+b") as f:
        f.truncate(100)
    query = sorted((photos()).rglob("*.jpg"))[0]
    with caplog.at_level(logging.WARNING):
        client = make_app(root).test_client()
        response = client.post("/api/search", data=upload(query.read_bytes(), k=5), headers=CSRF)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == 5 and results[0]["path"] == str(query)
    assert "rebuilt in memory from the catalog" in caplog.text
    problem = client.get("/api/library").get_json()["index"]["problem"]
    assert "not the" in problem and "written" in problem
