"""Hostile and sloppy requests get a clear 4xx, never a 500: huge ids, zero-area boxes,
non-standard or deeply nested JSON, loosely typed fields; image bytes carry CORP;
internal errors stay in the log; cross-site checks follow Sec-Fetch-Site and Origin."""

from __future__ import annotations

import errno
import json

import pytest

from tests.support.cli import run_cli
from tests.support.webapp import CSRF, build_library, copy_library, make_app, photos, upload

HUGE = [2**63, 2**64 + 5, 10**30]

ID_ROUTES = [
    ("GET", "/api/images/{}"),
    ("GET", "/api/images/{}/similar"),
    ("GET", "/api/images/{}/thumbnail"),
    ("GET", "/api/images/{}/preview"),
    ("GET", "/api/images/{}/file"),
    ("PUT", "/api/images/{}/label"),
    ("DELETE", "/api/images/{}/label"),
    ("POST", "/api/images/{}/tag/accept"),
    ("DELETE", "/api/images/{}/tag"),
    ("POST", "/api/clusters/{}/accept"),
    ("POST", "/api/clusters/{}/merge"),
    ("POST", "/api/clusters/{}/split"),
    ("POST", "/api/clusters/{}/reject"),
    ("GET", "/images/{}"),
]

# Every route that reads a JSON body, with a body it would otherwise take.
JSON_ROUTES = [
    ("PUT", "/api/images/1/label", {"label": "x"}),
    ("POST", "/api/labels", {"ids": [1], "label": "x"}),
    ("POST", "/api/search", {"text": "a cat"}),
    ("POST", "/api/index-job", {"folder": "/nonexistent"}),
    ("POST", "/api/clusters/1/accept", {"as": "x"}),
    ("POST", "/api/clusters/1/merge", {"into": "x"}),
    ("POST", "/api/tag", {"head": "knn"}),
    ("POST", "/api/evaluation", {"folds": 1}),
]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A copy of the session's library: the requests here that are allowed change it."""
    base = tmp_path_factory.mktemp("hardlib")
    return copy_library(build_library(base), base / "own")


@pytest.fixture(scope="module")
def app(source):
    return make_app(source)


@pytest.fixture()
def client(app):
    return app.test_client()


def some_image(client) -> dict:
    return client.get("/api/images?limit=1").get_json()["images"][0]


# -- ids ----------------------------------------------------------------------------
@pytest.mark.parametrize("method, route", ID_ROUTES)
@pytest.mark.parametrize("huge", HUGE)
def test_ids_past_sqlite_integers_are_404(client, method, route, huge):
    response = client.open(route.format(huge), method=method, json={"label": "x"}, headers=CSRF)
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("ids", [[2**63], [1, 2**64], [-1], [True], [1.0], ["1"]])
def test_label_many_refuses_ids_that_are_not_catalog_ids(client, ids):
    response = client.post("/api/labels", json={"ids": ids, "label": "x"}, headers=CSRF)
    assert response.status_code == 400
    assert "ids" in response.get_json()["error"]


def test_clusters_show_of_a_huge_id_is_one_line(source):
    proc = run_cli("clusters", "show", str(2**63), "--library", str(source), check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- boxes --------------------------------------------------------------------------
ZERO_BOXES = ["0,0,0.4,0.4", "10,10,10.4,200", "0,0,1e-300,1e-300"]


def query_path():
    folder = sorted(p for p in photos().iterdir() if p.is_dir())[0]
    return sorted(folder.glob("*.jpg"))[0]


@pytest.mark.parametrize("box", ZERO_BOXES)
@pytest.mark.parametrize("mode", ["fast", "robust"])
def test_a_box_with_no_whole_pixel_is_400(client, box, mode):
    data = query_path().read_bytes()
    response = client.post("/api/search", data=upload(data, box=box, mode=mode), headers=CSRF)
    assert response.status_code == 400
    assert "box" in response.get_json()["error"]


@pytest.mark.parametrize("box", ZERO_BOXES)
def test_cli_box_with_no_whole_pixel_is_one_line(source, box):
    proc = run_cli("search", str(query_path()), "--box", box, "--library", str(source), check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "box" in proc.stderr


# -- JSON -----------------------------------------------------------------------------
def nested(depth: int) -> str:
    return '{"k": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("method, route, body", JSON_ROUTES)
@pytest.mark.parametrize(
    "raw",
    [
        nested(5000),
        "[" * 5000 + "]" * 5000,
        '{"k": Infinity}',
        '{"k": NaN}',
        '{"min_confidence": -Infinity, "label": "x"}',
    ],
)
def test_hostile_json_is_400_on_every_json_endpoint(client, method, route, body, raw):
    headers = {**CSRF, "Content-Type": "application/json"}
    response = client.open(route, method=method, data=raw, headers=headers)
    assert response.status_code == 400, response.get_json()
    assert "not valid JSON" in response.get_json()["error"]


def test_the_same_routes_take_their_plain_bodies(client):
    """The bodies above are not refused for themselves (the 400s are the JSON's)."""
    for method, route, body in JSON_ROUTES:
        response = client.open(route, method=method, json=body, headers=CSRF)
        assert response.status_code < 500, (route, response.get_json())
        assert "JSON object" not in response.get_json().get("error", ""), route


@pytest.mark.parametrize(
    ("k", "shown"),
    [(1.5, "1.5"), (True, "true"), (False, "false"), ("ten", '"ten"'), ([5], "a list"),
     ({"k": None}, "an object"), ("x" * 100, '"' + "x" * 40 + '"…')],
)  # fmt: skip
def test_k_must_be_a_whole_number_in_json(client, k, shown):
    response = client.post("/api/search", json={"text": "cat", "k": k}, headers=CSRF)
    assert response.status_code == 400
    assert response.get_json()["error"] == f"k must be a whole number, not {shown}"


@pytest.mark.parametrize(
    ("route", "body", "words"),
    [
        ("/api/index-job", {"folder": "/tmp", "labels_from_folders": [True]},
         "labels_from_folders must be true or false, not a list"),
        ("/api/index-job", {"folder": "/tmp", "labels_from_folders": "false"},
         'labels_from_folders must be true or false, not "false"'),
        ("/api/labels/bulk", {"action": "remove", "ids": [1, True]},
         "image ids must be whole numbers, not true"),
        ("/api/labels/bulk", {"action": "remove", "ids": [None]},
         "image ids must be whole numbers, not null"),
    ],
)  # fmt: skip
def test_errors_name_json_values_as_json_spells_them(client, route, body, words):
    response = client.post(route, json=body, headers=CSRF)
    assert response.status_code == 400
    assert response.get_json()["error"] == words


@pytest.mark.parametrize("value", ["false", "true", 0, 1, [], {}])
def test_labels_from_folders_must_be_a_boolean(client, tmp_path, value):
    body = {"folder": str(tmp_path), "labels_from_folders": value}
    response = client.post("/api/index-job", json=body, headers=CSRF)
    assert response.status_code == 400
    assert "labels_from_folders must be true or false" in response.get_json()["error"]


# -- media ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["thumbnail", "preview", "file"])
def test_image_bytes_carry_cross_origin_resource_policy(client, kind):
    image_id = some_image(client)["id"]
    response = client.get(f"/api/images/{image_id}/{kind}")
    assert response.status_code == 200
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_thumbnails_are_cached_again_after_a_full_disk(source, tmp_path, monkeypatch):
    from lookalike.webapp import thumbnails

    folder = tmp_path / "thumbs"
    client = make_app(source, THUMBNAIL_DIR=str(folder)).test_client()
    ids = [c["id"] for c in client.get("/api/images?limit=3").get_json()["images"]]
    real = thumbnails.tempfile.mkstemp
    failures = []

    def full_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(thumbnails.tempfile, "mkstemp", full_once)
    assert client.get(f"/api/images/{ids[0]}/thumbnail").status_code == 200  # in memory
    assert not list(folder.rglob("*.jpg"))
    for image_id in ids[1:]:
        assert client.get(f"/api/images/{image_id}/thumbnail").status_code == 200
    assert len(list(folder.rglob("*.jpg"))) == 2  # the disk has room again: cached


# -- internal errors --------------------------------------------------------------------
SECRET = "/srv/secret/internal-path.db: disk I/O error in module xyz"


def test_an_index_job_failure_does_not_show_the_internal_text(source, tmp_path, monkeypatch):
    from lookalike.webapp import jobs

    def boom(*args, **kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(jobs, "update_library", boom)
    app = make_app(copy_library(source, tmp_path / "lib"))
    client = app.test_client()
    assert client.post("/api/index-job", json={"folder": str(tmp_path)}).status_code == 202
    app.extensions["lookalike.jobs"].wait(60)
    status = client.get("/api/index-job").get_json()
    assert status["state"] == "failed"
    assert "secret" not in json.dumps(status)
    assert "server log" in status["error"]


def test_an_evaluation_failure_does_not_show_the_internal_text(source, tmp_path, monkeypatch):
    from lookalike.webapp import evaluation

    def boom(*args, **kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(evaluation, "evaluate_library", boom)
    app = make_app(copy_library(source, tmp_path / "lib"))
    client = app.test_client()
    assert client.post("/api/evaluation", json={"folds": 2}).status_code == 202
    app.extensions["lookalike.review"].evaluations.wait(60)
    status = client.get("/api/evaluation").get_json()["cross_validation"]
    assert status["state"] == "failed"
    assert "secret" not in json.dumps(status)
    assert "server log" in status["error"]


# -- cross-site requests ------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, allowed",
    [
        ({}, True),  # curl, scripts
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),
        ({"Origin": "http://localhost"}, True),  # the test client's host
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, True),
        ({"X-Requested-With": "x"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "same-site", "X-Requested-With": "x"}, False),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://localhost.evil.example"}, False),
    ],
)
def test_cross_site_decision_follows_sec_fetch_site_and_origin(client, headers, allowed):
    image_id = some_image(client)["id"]
    response = client.delete(f"/api/images/{image_id}/tag", headers=headers)
    assert (response.status_code != 403) == allowed, response.get_json()
