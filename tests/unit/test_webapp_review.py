"""Cluster review and evaluation routes, via Flask's test client over a real library.

The library is a dev slice of 10 classes x 8 images whose first class (Faces) and
seventh (bonsai) lost their labels: two new categories to find.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from lookalike.classifier.tagging.tagger import HEADS
from tests.support.webapp import CROSS_SITE, CSRF, build_cluster_library, copy_library, make_app


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_cluster_library(tmp_path_factory.mktemp("clusterlib"))


@pytest.fixture()
def app(source, tmp_path):
    return make_app(copy_library(source, tmp_path / "library"))


@pytest.fixture()
def client(app):
    return app.test_client()


def faces_cluster(doc: dict) -> dict:
    for cluster in doc["clusters"]:
        folders = {card["path"].split("/")[-2] for card in cluster["representatives"]}
        if cluster["label"] is None and cluster["size"] >= 5 and folders == {"Faces"}:
            return cluster
    raise AssertionError(f"no cluster of the unlabelled Faces in {doc}")


def labels_of(app, ids: list[int]) -> dict[int, tuple[str, str]]:
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT image_id, label, origin FROM labels WHERE image_id IN ({marks})", ids
    ).fetchall()
    conn.close()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_get_never_clusters_a_post_does_and_get_then_reads_it(client, app):
    root = app.extensions["lookalike"].root
    before = (root / "catalog.sqlite").read_bytes()
    empty = client.get("/api/clusters").get_json()
    assert empty["clusters"] == [] and empty["clustered"] is False
    assert (root / "catalog.sqlite").read_bytes() == before  # GET wrote nothing
    first = client.post("/api/clusters", headers=CSRF).get_json()
    faces_cluster(first)
    again = client.get("/api/clusters").get_json()
    assert [c["id"] for c in again["clusters"]] == [c["id"] for c in first["clusters"]]
    assert again["clustered"] is True and again["stale"] is False
    assert again["min_size"] == 5 and 0 < again["merge_similarity"] < 1
    assert {c["kind"] for c in again["clusters"]} <= {"new", "label"}


def test_clustering_finds_the_unlabelled_class(client):
    doc = client.post("/api/clusters", headers=CSRF).get_json()
    cluster = faces_cluster(doc)
    assert cluster["status"] == "open"
    assert 1 <= len(cluster["representatives"]) <= 6
    assert cluster["representatives"][0]["thumbnail_url"]
    assert cluster["suggested_name"]  # the model's majority ImageNet guess
    assert cluster["nearest_label"] in doc["labels"]


def test_accept_a_cluster_as_a_class(client, app):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    keep, drop = cluster["members"][:-1], cluster["members"][-1]
    url = f"/api/clusters/{cluster['id']}/accept"
    doc = client.post(url, json={"as": "Person A", "exclude": [drop]}, headers=CSRF).get_json()
    assert doc["status"] == "accepted" and doc["labelled"] == len(keep)
    labels = labels_of(app, cluster["members"])
    assert labels == {i: ("Person A", "review") for i in keep}
    again = client.post(url, json={"as": "Person A"}, headers=CSRF)
    assert again.status_code == 400 and "already reviewed" in again.get_json()["error"]


@pytest.mark.parametrize(
    "action, body, status, words",
    [
        ("accept", {"as": ""}, 400, "empty"),
        ("accept", {}, 400, "send"),
        ("accept", {"as": "x", "exclude": "all"}, 400, "list of image ids"),
        ("merge", {"into": "no such label"}, 400, "no label"),
        ("accept", {"as": "=cmd|calc!A0"}, 400, "odd characters"),  # the one label rule
        ("accept", {"as": "a $x$"}, 400, "odd characters '$'"),
    ],
)
def test_bad_review_actions_change_nothing(client, app, action, body, status, words):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    response = client.post(f"/api/clusters/{cluster['id']}/{action}", json=body, headers=CSRF)
    assert response.status_code == status
    assert words in response.get_json()["error"]
    assert labels_of(app, cluster["members"]) == {}


def test_merge_into_an_existing_label(client, app):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    target = cluster["nearest_label"]
    url = f"/api/clusters/{cluster['id']}/merge"
    assert client.post(url, json={"into": target}, headers=CSRF).status_code == 200
    assert set(labels_of(app, cluster["members"]).values()) == {(target, "review")}


def test_reject_keeps_the_members_apart_next_time(client):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    url = f"/api/clusters/{cluster['id']}/reject"
    assert client.post(url, headers=CSRF).get_json()["status"] == "rejected"
    again = client.post("/api/clusters", headers=CSRF).get_json()
    for other in again["clusters"]:
        assert len(set(other["members"]) & set(cluster["members"])) <= 1


def test_split_never_makes_parts_below_the_min_size(client):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    assert cluster["size"] < 10  # of 8 images: no two parts of 5
    refused = client.post(f"/api/clusters/{cluster['id']}/split", headers=CSRF)
    assert refused.status_code == 400 and "at least 5" in refused.get_json()["error"]
    listing = client.get("/api/clusters").get_json()  # nothing changed
    assert cluster["id"] in [c["id"] for c in listing["clusters"]]
    listing = client.post("/api/clusters", headers=CSRF, json={"min_size": 3}).get_json()
    assert listing["min_size"] == 3


def test_every_member_of_a_cluster_can_be_paged_through(client):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    url = f"/api/clusters/{cluster['id']}/members"
    first = client.get(f"{url}?limit=3").get_json()
    rest = client.get(f"{url}?offset=3&limit=100").get_json()
    assert first["total"] == cluster["size"] and len(first["members"]) == 3
    seen = [c["id"] for c in first["members"] + rest["members"]]
    assert sorted(seen) == sorted(cluster["members"])
    assert all("thumbnail_url" in c for c in first["members"])
    for bad in ("limit=0", "limit=501", "limit=1.5", "offset=-1", "offset=x"):
        response = client.get(f"{url}?{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0] in response.get_json()["error"]
    assert client.get(f"{url}?limit=500").get_json()["limit"] == 500
    assert client.get("/api/clusters/9999/members").status_code == 404
    assert client.post("/api/clusters", headers=CSRF, json={"min_size": 1}).status_code == 400
    assert client.post("/api/clusters", headers=CSRF, json={"min_size": "5"}).status_code == 400


def test_unknown_cluster_is_404(client):
    client.post("/api/clusters", headers=CSRF)
    response = client.post("/api/clusters/9999/reject", headers=CSRF)
    assert response.status_code == 404
    assert response.get_json()["error"] == (
        "no cluster 9999; the Clusters page lists the current ones"
    )
    members = client.get("/api/clusters/9999/members")
    assert members.status_code == 404 and "lookalike" not in members.get_json()["error"]


def test_review_errors_speak_of_the_page_not_of_commands(client, app):
    cluster = faces_cluster(client.post("/api/clusters", headers=CSRF).get_json())
    url = f"/api/clusters/{cluster['id']}"
    label = cluster["nearest_label"]
    taken = client.post(f"{url}/accept", json={"as": label.upper()}, headers=CSRF)
    assert taken.status_code == 400
    assert taken.get_json()["error"] == (
        f"the label {label!r} already exists; to add these images to it, use “Merge into {label}”"
    )
    unknown = client.post(f"{url}/merge", json={"into": "no such label"}, headers=CSRF)
    assert "use Accept as new class" in unknown.get_json()["error"]
    outsider = next(i for i in labels_of(app, list(range(1, 200))))  # a labelled image
    stray = client.post(f"{url}/accept", json={"as": "New", "exclude": [outsider]}, headers=CSRF)
    assert stray.get_json()["error"].startswith("exclude: ")
    for response in (taken, unknown, stray):
        assert "lookalike" not in response.get_json()["error"]
    assert labels_of(app, cluster["members"]) == {}


def test_cross_site_cluster_actions_are_refused(client):
    assert client.post("/api/clusters", headers=CROSS_SITE).status_code == 403


def test_clustering_a_fully_labelled_library_says_so(source, tmp_path):
    root = copy_library(source, tmp_path / "library")
    conn = sqlite3.connect(root / "catalog.sqlite")
    with conn:
        conn.execute("INSERT OR IGNORE INTO labels SELECT id, 'x', 'manual', 0 FROM images")
    conn.close()
    response = make_app(root).test_client().post("/api/clusters", headers=CSRF)
    assert response.status_code == 400
    assert "nothing to cluster" in response.get_json()["error"]


# -- tagging runs and the evaluation figures ------------------------------------------------
def test_evaluation_before_any_run(client):
    doc = client.get("/api/evaluation").get_json()
    assert doc["tag_run"] is None
    assert doc["cross_validation"]["state"] == "none"
    assert doc["cross_validation"]["report_url"] is None
    assert client.get("/api/tag").get_json() == {"last_run": None}
    assert client.get("/evaluation/report").status_code == 404


def test_tag_the_library_then_read_its_figures(client, app):
    unlabelled = len(labels_of_missing(app))
    run = client.post("/api/tag", json={"head": "knn"}, headers=CSRF).get_json()
    assert run["head"] == "knn"
    assert run["tagged"] + run["unknown"] == unlabelled
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == unlabelled
    conn.close()
    assert client.get("/api/tag").get_json()["last_run"]["tagged"] == run["tagged"]
    tag_run = client.get("/api/evaluation").get_json()["tag_run"]
    assert tag_run["labelled"] == run["labelled"]
    assert tag_run["figures"]["images tagged"] == run["tagged"]
    accuracy = tag_run["figures"]["known images tagged right"]
    assert accuracy is None or 0.0 <= accuracy <= 1.0
    # The browse filters now hold the tagged images.
    counts = client.get("/api/labels").get_json()["counts"]
    assert counts["tagged"] + counts["unknown"] == unlabelled


def test_tagging_with_or_without_the_clusters(client, app):
    assert client.post("/api/tag", json={}, headers=CSRF).get_json()["clusters"] is True
    # the figures shown are those of the clusters' replay, which the run stored
    tag_run = client.get("/api/evaluation").get_json()["tag_run"]
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'tagging'").fetchone()
    conn.close()
    replay = json.loads(stored)["replay"]
    assert tag_run["replayed"] is True and replay["rounds_rows"] > 0
    assert tag_run["figures"]["known images tagged right"] == replay["known_accuracy"]
    alone = client.post("/api/tag", json={"clusters": False}, headers=CSRF)
    assert alone.status_code == 200 and alone.get_json()["clusters"] is False
    assert client.get("/api/tag").get_json()["last_run"]["clusters"] is False
    bad = client.post("/api/tag", json={"clusters": "yes"}, headers=CSRF)
    assert bad.status_code == 400 and "clusters" in bad.get_json()["error"]


def test_cross_validation_runs_in_the_background_and_serves_its_report(client, app):
    review = app.extensions["lookalike.review"]
    response = client.post("/api/evaluation", json={"folds": 2, "heads": ["knn"]}, headers=CSRF)
    assert response.status_code == 202
    review.evaluations.wait(300)
    cv = client.get("/api/evaluation").get_json()["cross_validation"]
    assert cv["state"] == "done", cv
    assert [h["head"] for h in cv["heads"]] == ["knn"]
    assert 0.0 <= cv["heads"][0]["figures"]["accuracy"] <= 1.0
    assert cv["folds"] == 2 and cv["labelled"] == 64
    report = client.get(cv["report_url"])
    assert report.status_code == 200 and b"<html" in report.data.lower()
    assert b"<meta name='viewport'" in report.data  # laid out at a phone's width
    assert "script-src" not in report.headers["Content-Security-Policy"]
    # A restarted server shows the summary the run stored in the catalog.
    again = make_app(app.extensions["lookalike"].root).test_client()
    stored = again.get("/api/evaluation").get_json()["cross_validation"]
    assert stored["state"] == "done" and stored["stored"] is True
    assert stored["heads"] == cv["heads"] and stored["report_url"] is None
    assert stored["labelled"] is None and stored["evaluated_at"] > 0


@pytest.mark.parametrize(
    "body", [{"folds": 1}, {"folds": "5"}, {"heads": ["bogus"]}, {"heads": "knn"}]
)
def test_bad_evaluation_requests_are_400(client, body):
    response = client.post("/api/evaluation", json=body, headers=CSRF)
    assert response.status_code == 400
    assert client.post("/api/evaluation", json={}, headers=CROSS_SITE).status_code == 403


@pytest.mark.parametrize(
    "body", [{"head": "bogus"}, {"head": 3}, {"min_confidence": "x"}, {"min_confidence": 2.0}]
)
def test_bad_tagging_requests_are_400(client, body):
    response = client.post("/api/tag", json=body, headers=CSRF)
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_cross_site_tagging_is_refused(client):
    assert client.post("/api/tag", json={}, headers=CROSS_SITE).status_code == 403


def labels_of_missing(app) -> list[int]:
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    rows = conn.execute(
        "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM labels)"
    ).fetchall()
    conn.close()
    return [r[0] for r in rows]


def test_pages_offer_every_review_feature(client):
    for url, marker in [
        ("/clusters", b'id="recluster"'),
        ("/evaluation", b'id="run-eval"'),
        ("/evaluation", b'id="tag-now"'),
        ("/library", b'id="tag-now"'),
    ]:
        page = client.get(url)
        assert page.status_code == 200 and marker in page.data
        assert b"not available" not in page.data


def test_more_of_a_labelled_class_carries_its_label(client, app):
    """A cluster of unlabelled images of a labelled class names that class."""
    conn = sqlite3.connect(app.extensions["lookalike"].root / "catalog.sqlite")
    with conn:  # half of a labelled class loses its labels: more of that class
        rows = conn.execute(
            "SELECT image_id, label FROM labels WHERE label = "
            "(SELECT label FROM labels ORDER BY label LIMIT 1)"
        ).fetchall()
        conn.executemany("DELETE FROM labels WHERE image_id = ?", [(r[0],) for r in rows[:5]])
    conn.close()
    doc = client.post("/api/clusters", headers=CSRF).get_json()
    labelled = [c for c in doc["clusters"] if c["label"] is not None]
    assert labelled, doc
    assert all(c["label"] in doc["labels"] for c in labelled)
    assert any(c["label"] == rows[0][1] for c in labelled)


def test_the_head_chosen_for_tagging_is_kept_and_used(client, app):
    assert client.get("/api/evaluation").get_json()["tag_head"] == "proto"
    # The page's chooser offers every head, the default among them (it was left blank).
    page = client.get("/evaluation").get_data(as_text=True)
    assert all(f"<option>{head}</option>" in page for head in HEADS)
    chosen = client.put("/api/tag-head", json={"head": "linear"}, headers=CSRF)
    assert chosen.get_json() == {"tag_head": "linear"}
    assert client.get("/api/evaluation").get_json()["tag_head"] == "linear"
    run = client.post("/api/tag", json={}, headers=CSRF).get_json()
    assert run["head"] == "linear"
    bad = client.put("/api/tag-head", json={"head": "forest"}, headers=CSRF)
    assert bad.status_code == 400 and "knn" in bad.get_json()["error"]
    assert client.put("/api/tag-head", json={"head": "svm"}, headers=CROSS_SITE).status_code == 403
