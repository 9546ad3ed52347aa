"""Images, thumbnails, browsing, labels, tags, index jobs and pages, via Flask's test client."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3

import pytest
from PIL import Image

from lookalike.indexer.store.catalog import browse_query
from tests.support.data import dev_images
from tests.support.webapp import CROSS_SITE, CSRF, build_library, copy_library, make_app, upload


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("weblib"))


@pytest.fixture()
def app(source, tmp_path):
    """A fresh copy of the library per test, so writes do not leak between tests."""
    return make_app(copy_library(source, tmp_path / "library"))


@pytest.fixture()
def client(app):
    return app.test_client()


def ids_of(app, sql: str, *args) -> list[int]:
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    try:
        return [r[0] for r in conn.execute(sql, args)]
    finally:
        conn.close()


def labelled_id(app) -> int:
    return ids_of(app, "SELECT image_id FROM labels ORDER BY image_id")[0]


def tagged_id(app, unknown: bool = False) -> int:
    test = "IS NULL" if unknown else "IS NOT NULL"
    return ids_of(app, f"SELECT image_id FROM tags WHERE label {test}")[0]


# -- one image ------------------------------------------------------------------
def test_image_doc(client, app):
    image_id = labelled_id(app)
    doc = client.get(f"/api/images/{image_id}").get_json()
    assert doc["id"] == image_id
    assert doc["label"]["origin"] == "folder"
    assert doc["tag"] is None
    assert doc["width"] > 0 and doc["height"] > 0
    assert 1 <= len(doc["suggestions"]) <= 3
    assert {"label", "score"} <= set(doc["suggestions"][0])


def test_unknown_image_is_404(client):
    for url in ("/api/images/99999", "/api/images/99999/similar", "/api/images/99999/thumbnail"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "no image with id 99999" in response.get_json()["error"]


def test_similar_excludes_the_image_itself(client, app):
    image_id = labelled_id(app)
    results = client.get(f"/api/images/{image_id}/similar?k=4").get_json()["results"]
    assert len(results) == 4
    assert image_id not in [r["id"] for r in results]
    assert client.get(f"/api/images/{image_id}/similar?k=0").status_code == 400


# -- thumbnails and files ---------------------------------------------------------
def test_thumbnail_is_made_once_cached_on_disk_and_cacheable(client, app):
    image_id = labelled_id(app)
    url = client.get(f"/api/images/{image_id}").get_json()["thumbnail_url"]
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    cache = {part.strip() for part in first.headers["Cache-Control"].split(",")}
    assert cache == {"public", "max-age=31536000", "immutable"}  # no "no-cache"
    image = Image.open(io.BytesIO(first.data))
    assert max(image.size) <= 256
    cached = list((app.extensions["lookalike"].root / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = client.get(url)
    assert second.data == first.data
    assert cached[0].stat().st_mtime_ns == stamp  # served from the cache, not made again
    etag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_thumbnail_without_version_is_revalidated(client, app):
    response = client.get(f"/api/images/{labelled_id(app)}/thumbnail")
    assert response.status_code == 200
    assert "no-cache" in response.headers["Cache-Control"]


def test_preview_and_original_file(client, app):
    image_id = labelled_id(app)
    doc = client.get(f"/api/images/{image_id}").get_json()
    preview = client.get(doc["preview_url"])
    assert preview.status_code == 200 and preview.mimetype == "image/jpeg"
    original = client.get(doc["file_url"])
    assert original.status_code == 200
    with open(doc["path"], "rb") as f:
        assert original.data == f.read()


def test_only_indexed_files_are_served(client, app):
    image_id = labelled_id(app)
    for url in (
        "/api/images/../../../../etc/passwd",
        "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/file",
        "/api/images/-1/file",
        "/static/../services.py",
        "/static/%2e%2e/services.py",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
    # A path parameter is ignored: the file is the catalog's, chosen by id.
    response = client.get(f"/api/images/{image_id}/file?path=/etc/passwd")
    assert response.status_code == 200
    assert b"root:" not in response.data


def test_a_vanished_file_is_404_not_500(client, app):
    image_id = labelled_id(app)
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE images SET path = '/nonexistent/x.jpg' WHERE id = ?", (image_id,))
    conn.close()
    for kind in ("thumbnail", "preview", "file"):
        response = client.get(f"/api/images/{image_id}/{kind}")
        assert response.status_code == 404, kind
        assert response.is_json


# -- browsing -----------------------------------------------------------------------
def page_through(client, **params) -> list[int]:
    seen, after = [], 0
    while after is not None:
        query = "&".join(f"{k}={v}" for k, v in {**params, "after": after, "limit": 3}.items())
        doc = client.get(f"/api/images?{query}").get_json()
        seen.extend(item["id"] for item in doc["images"])
        after = doc["next_after"]
    return seen


def test_paging_visits_every_image_once_in_order(client, app):
    seen = page_through(client, filter="all")
    assert seen == ids_of(app, "SELECT id FROM images ORDER BY id")


@pytest.mark.parametrize(
    "filter, sql",
    [
        ("labelled", "SELECT image_id FROM labels ORDER BY image_id"),
        ("unlabelled", "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM labels)"),
        ("tagged", "SELECT image_id FROM tags WHERE label IS NOT NULL"),
        ("unknown", "SELECT image_id FROM tags WHERE label IS NULL"),
    ],
)
def test_filters(client, app, filter, sql):
    expected = ids_of(app, sql)
    assert expected, "the fixture library must have images in every filter"
    assert page_through(client, filter=filter) == sorted(expected)


def test_label_filter(client, app):
    label = ids_of(app, "SELECT label FROM labels LIMIT 1")[0]
    expected = ids_of(app, "SELECT image_id FROM labels WHERE label = ? ORDER BY image_id", label)
    assert page_through(client, label=label) == expected


@pytest.mark.parametrize("query", ["filter=bogus", "limit=0", "limit=x", "after=-1"])
def test_bad_browse_parameters_are_400(client, query):
    response = client.get(f"/api/images?{query}")
    assert response.status_code == 400
    assert "error" in response.get_json()


@pytest.mark.parametrize("filter", ["all", "labelled", "unlabelled", "tagged", "unknown"])
def test_browse_queries_never_scan_a_whole_table(app, filter):
    """Keyset paging: each page is a range search on an integer key, also at 100k images."""
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    for label in (None, "x") if filter == "all" else (None,):
        sql, args = browse_query(filter, label, 10, 60)
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        drivers = [step for step in plan if not step.startswith("CORRELATED")]
        assert drivers and drivers[0].startswith("SEARCH"), plan
        assert not any(step.startswith("SCAN") for step in plan), plan
    conn.close()


def test_errors_listing(client):
    doc = client.get("/api/errors").get_json()
    assert [e["path"].rsplit("/", 1)[1] for e in doc["errors"]] == ["broken.jpg"]
    assert doc["next_after"] is None


def test_label_counts(client):
    doc = client.get("/api/labels").get_json()
    assert sum(entry["count"] for entry in doc["labels"]) == 18
    assert doc["counts"] == {
        "all": 20,
        "labelled": 18,
        "unlabelled": 2,
        "tagged": 1,
        "unknown": 1,
        "errors": 1,
    }


# -- changing labels and tags ---------------------------------------------------------
def test_set_fix_and_remove_a_label(client, app):
    image_id = labelled_id(app)
    url = f"/api/images/{image_id}/label"
    doc = client.put(url, json={"label": "  new kind "}, headers=CSRF).get_json()
    assert doc["label"]["label"] == "new kind"
    assert doc["label"]["origin"] == "manual"
    assert client.get(f"/api/images/{image_id}").get_json()["label"]["label"] == "new kind"
    doc = client.delete(url, headers=CSRF).get_json()
    assert doc["label"] is None


@pytest.mark.parametrize("body", [{"label": ""}, {"label": "  "}, {"label": 3}, {"label": "a\nb"}])
def test_bad_labels_are_400_and_change_nothing(client, app, body):
    image_id = labelled_id(app)
    before = client.get(f"/api/images/{image_id}").get_json()["label"]
    response = client.put(f"/api/images/{image_id}/label", json=body, headers=CSRF)
    assert response.status_code == 400
    assert client.get(f"/api/images/{image_id}").get_json()["label"] == before


def test_cross_site_label_changes_are_refused(client, app):
    image_id = labelled_id(app)
    response = client.put(f"/api/images/{image_id}/label", json={"label": "x"}, headers=CROSS_SITE)
    assert response.status_code == 403
    assert client.delete(f"/api/images/{image_id}/label", headers=CROSS_SITE).status_code == 403
    assert client.get(f"/api/images/{image_id}").get_json()["label"]["label"] != "x"


def test_label_an_unknown_image_is_404(client):
    response = client.put("/api/images/99999/label", json={"label": "x"}, headers=CSRF)
    assert response.status_code == 404


def test_label_many_is_all_or_nothing(client, app):
    ids = ids_of(app, "SELECT id FROM images ORDER BY id")[:3]
    bad = client.post("/api/labels", json={"ids": [*ids, 99999], "label": "batch"}, headers=CSRF)
    assert bad.status_code == 404
    assert ids_of(app, "SELECT image_id FROM labels WHERE label = 'batch'") == []
    good = client.post("/api/labels", json={"ids": ids, "label": "batch"}, headers=CSRF)
    assert good.get_json() == {"labelled": 3}
    assert ids_of(app, "SELECT image_id FROM labels WHERE label = 'batch'") == ids
    assert client.post("/api/labels", json={"ids": "1"}, headers=CSRF).status_code == 400


def test_accept_a_predicted_tag(client, app):
    image_id = tagged_id(app)
    tag = client.get(f"/api/images/{image_id}").get_json()["tag"]
    assert tag["confidence"] == pytest.approx(0.87)
    doc = client.post(f"/api/images/{image_id}/tag/accept", headers=CSRF).get_json()
    assert doc["label"]["label"] == tag["label"]
    assert doc["label"]["origin"] == "manual"
    assert doc["tag"] is None  # a human label replaces the predicted tag


def test_accepting_unknown_or_missing_tags_is_400(client, app):
    unknown = tagged_id(app, unknown=True)
    response = client.post(f"/api/images/{unknown}/tag/accept", headers=CSRF)
    assert response.status_code == 400 and "unknown" in response.get_json()["error"]
    response = client.post(f"/api/images/{labelled_id(app)}/tag/accept", headers=CSRF)
    assert response.status_code == 400 and "no predicted tag" in response.get_json()["error"]


def test_dismiss_a_tag(client, app):
    image_id = tagged_id(app)
    doc = client.delete(f"/api/images/{image_id}/tag", headers=CSRF).get_json()
    assert doc["tag"] is None


# -- index jobs and live reload ---------------------------------------------------------
def test_index_job_adds_images_that_searches_then_find(client, app, tmp_path):
    folder = tmp_path / "more" / "newclass"
    folder.mkdir(parents=True)
    new = dev_images(6, 1)[-2:]  # classes the library does not hold
    names = [f"{p.parent.name}_{p.name}" for p in new]
    for p, name in zip(new, names, strict=True):
        shutil.copy(p, folder / name)
    response = client.post(
        "/api/index-job",
        json={"folder": str(folder.parent), "labels_from_folders": True},
        headers=CSRF,
    )
    assert response.status_code == 202
    app.extensions["lookalike.jobs"].wait(120)
    status = client.get("/api/index-job").get_json()
    assert status["state"] == "done", status
    assert status["summary"]["added"] == 2
    assert status["library_images"] == 22
    query = (folder / names[0]).read_bytes()
    results = client.post("/api/search", data=upload(query, k=1), headers=CSRF).get_json()
    assert results["results"][0]["path"] == str(folder / names[0])
    assert results["results"][0]["label"] == "newclass"


def test_an_index_run_of_another_process_shows_its_progress(client, app, other_process):
    import time

    from lookalike.indexer import progress

    root = app.extensions["lookalike"].root
    now = time.time()
    doc = {"pid": other_process.pid, "folders": ["/photos"], "state": "running", "done": 40,
           "total": 100, "started": now, "updated": now}  # fmt: skip
    (root / progress.FILE_NAME).write_text(json.dumps(doc))
    status = client.get("/api/index-job").get_json()
    assert status["external"] is True and status["state"] == "running"
    assert (status["done"], status["total"], status["folders"]) == (40, 100, ["/photos"])
    other_process.kill()
    other_process.wait()
    assert client.get("/api/index-job").get_json()["state"] == "idle"  # its writer is gone
    (root / progress.FILE_NAME).unlink()


def test_an_idle_index_job_answers_every_documented_field(client):
    status = client.get("/api/index-job").get_json()
    fields = {"state", "folder", "done", "total", "summary", "error"}
    assert fields | {"library_images", "content_version"} <= set(status)
    assert {k: status[k] for k in fields} == {
        "state": "idle", "folder": None, "done": 0, "total": 0, "summary": None, "error": None
    }  # fmt: skip


@pytest.mark.parametrize("folder", ["", "relative/path", "/no/such/folder"])
def test_index_job_needs_an_existing_absolute_folder(client, folder):
    response = client.post("/api/index-job", json={"folder": folder}, headers=CSRF)
    assert response.status_code == 400
    assert client.get("/api/index-job").get_json()["state"] == "idle"


@pytest.mark.parametrize("inside", ["", "thumbnails", "sub/deeper"])
def test_index_job_refuses_the_library_folder_and_folders_inside_it(client, app, inside):
    root = app.extensions["lookalike"].root
    folder = root / inside
    folder.mkdir(parents=True, exist_ok=True)
    response = client.post("/api/index-job", json={"folder": str(folder)}, headers=CSRF)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith(str(folder))
    words = "inside the library's own folder" if inside else "is the library's own folder"
    assert words in error and "name a folder of photos outside it" in error
    assert client.get("/api/index-job").get_json()["state"] == "idle"


def test_index_jobs_can_be_switched_off(source, tmp_path):
    app = make_app(copy_library(source, tmp_path / "lib"), ALLOW_INDEX_JOBS=False)
    response = app.test_client().post("/api/index-job", json={"folder": "/"}, headers=CSRF)
    assert response.status_code == 400


# -- pages --------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/", "/library", "/clusters", "/evaluation"])
def test_pages_render(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_image_page_and_its_404(client, app):
    image_id = labelled_id(app)
    page = client.get(f"/images/{image_id}")
    assert page.status_code == 200
    # The page links to a search with the image itself (the search page's ?image=ID).
    assert f'href="/?image={image_id}"' in page.get_data(as_text=True)
    missing = client.get("/images/99999")
    assert missing.status_code == 404 and b"no image with id 99999" in missing.data


def test_text_box_only_for_clip_libraries(client):
    assert b'id="text-form"' not in client.get("/").data


def test_static_files_are_served_without_external_references(client):
    for name in ("app.js", "app.css", "search.js", "image.js", "browse.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert b"http://" not in response.data and b"https://" not in response.data, name


def test_a_file_changed_since_indexing_is_not_served(client, app, tmp_path):
    image_id = labelled_id(app)
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    replacement = tmp_path / "other.jpg"
    replacement.write_bytes(b"a different file")
    with conn:
        conn.execute("UPDATE images SET path = ? WHERE id = ?", (str(replacement), image_id))
    conn.close()
    for kind in ("thumbnail", "file"):
        response = client.get(f"/api/images/{image_id}/{kind}")
        assert response.status_code == 404, kind
        assert "changed" in response.get_json()["error"]


def test_concurrent_searches_reads_and_writes_all_succeed(app, source):
    """Request threads share one model, one index and one writer: nothing fails or mixes."""
    import threading

    image_ids = ids_of(app, "SELECT id FROM images ORDER BY id")
    queries = [p.read_bytes() for p in sorted((source.parent / "photos").rglob("*.jpg"))[:8]]
    failures: list[str] = []

    def worker(slot: int) -> None:
        client = app.test_client()
        for round_ in range(4):
            data = queries[(slot + round_) % len(queries)]
            r = client.post("/api/search", data=upload(data, k=3), headers=CSRF)
            if r.status_code != 200 or r.get_json()["results"][0]["score"] < 0.999:
                failures.append(f"search {r.status_code}")
            image_id = image_ids[(slot * 4 + round_) % len(image_ids)]
            r = client.put(
                f"/api/images/{image_id}/label", json={"label": f"t{slot}"}, headers=CSRF
            )
            if r.status_code != 200 or r.get_json()["label"]["label"] != f"t{slot}":
                failures.append(f"label {r.status_code}")
            if client.get("/api/images?filter=labelled&limit=5").status_code != 200:
                failures.append("browse")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_thumbnails_are_made_in_memory_when_the_cache_cannot_be_written(source, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    app = make_app(copy_library(source, tmp_path / "lib"), THUMBNAIL_DIR=str(blocker / "thumbs"))
    client = app.test_client()
    image_id = labelled_id(app)
    response = client.get(f"/api/images/{image_id}/thumbnail")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(response.data)).size[0] <= 256


def test_a_label_answer_shows_its_own_label_while_another_request_labels_the_image(
    app, monkeypatch
):
    """The answer is read while the writer is held: a label of the same image by another
    request, started the moment the first has written, waits and cannot show in it."""
    import threading

    svc = app.extensions["lookalike"]
    image_id = ids_of(app, "SELECT id FROM images ORDER BY id")[0]
    written, second_done = threading.Event(), threading.Event()
    read = svc.image

    def image(i: int):
        if threading.current_thread().name == "first":
            written.set()
            second_done.wait(0.5)  # were the writer let go, the second label lands now
        return read(i)

    monkeypatch.setattr(svc, "image", image)
    answers: dict[str, dict] = {}

    def first() -> None:
        answers["first"] = svc.set_label(image_id, "first")

    def second() -> None:
        assert written.wait(10)
        answers["second"] = svc.set_label(image_id, "second")
        second_done.set()

    threads = [threading.Thread(target=f, name=f.__name__) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers["first"]["label"]["label"] == "first"
    assert answers["second"]["label"]["label"] == "second"
    assert ids_of(app, "SELECT image_id FROM labels WHERE label = 'second'") == [image_id]


def test_the_home_page_counts_tags_and_unknowns_apart(app, client):
    """The home page's "N tagged so far" counts images given a label, not the unknown ones."""
    from lookalike.indexer.store.catalog import Catalog

    unlabelled = ids_of(app, "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM labels)")
    cat = Catalog(app.extensions["lookalike"].root / "catalog.sqlite")
    try:
        with cat.transaction() as conn:
            tags = [(i, "cat" if n == 0 else None, 0.9) for n, i in enumerate(unlabelled[:2])]
            cat.replace_tags(conn, tags, head="proto", at=1.0)
    finally:
        cat.close()
    page = client.get("/").get_data(as_text=True)
    note = page[page.index('id="first-run"') :].split("</p>")[0]
    assert len(unlabelled) == 2 and "(1 tagged so far, 1 left unknown)" in note, note
