"""The box routes via Flask's test client over a real library and the real model."""

from __future__ import annotations

import pytest

from tests.support.webapp import CROSS_SITE, CSRF, build_library, copy_library, make_app


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("weblib"))


@pytest.fixture()
def client(source, tmp_path):
    return make_app(copy_library(source, tmp_path / "library")).test_client()


def first_id(client) -> int:
    return client.get("/api/images?limit=1").get_json()["images"][0]["id"]


def listing(client, image_id):
    answer = client.get(f"/api/images/{image_id}/boxes")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_create_list_update_delete(client):
    i = first_id(client)
    doc = listing(client, i)
    assert doc["boxes"] == [] and doc["can_suggest"] is True
    w, h, digest = doc["image"]["width"], doc["image"]["height"], doc["image"]["hash"]
    made = client.post(
        f"/api/images/{i}/boxes",
        json={"box": [1, 2, w // 2, h // 2], "label": "Thing", "hash": digest},
        headers=CSRF,
    )
    assert made.status_code == 201, made.get_json()
    box = made.get_json()["box"]
    assert box["box"] == [1, 2, w // 2, h // 2] and box["label"] == "Thing"
    assert box["origin"] == "human" and box["stale"] is False
    assert [b["id"] for b in listing(client, i)["boxes"]] == [box["id"]]
    moved = client.patch(
        f"/api/images/{i}/boxes/{box['id']}",
        json={"box": [3, 4, w - 1, h - 1], "label": "thing"},
        headers=CSRF,
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["box"]["box"] == [3, 4, w - 1, h - 1]
    assert moved.get_json()["box"]["label"] == "Thing"  # the first spelling
    gone = client.delete(f"/api/images/{i}/boxes/{box['id']}", headers=CSRF)
    assert gone.get_json() == {"deleted": 1}
    assert listing(client, i)["boxes"] == []
    again = client.delete(f"/api/images/{i}/boxes/{box['id']}", headers=CSRF)
    assert again.status_code == 404 and f"no box with id {box['id']}" in again.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"box": [10, 10, 10, 50], "label": "x"}, 400, "zero area"),
        ({"box": [50, 10, 10, 50], "label": "x"}, 400, "inverted"),
        ({"box": [0, 0, 100000, 50], "label": "x"}, 400, "outside"),
        ({"box": [0, 0, 20], "label": "x"}, 400, "four numbers"),
        ({"box": "0,0,20,20", "label": "x"}, 400, "four numbers"),
        ({"box": [0, 0, 20, 20], "label": "<b>"}, 400, "odd characters"),
        ({"box": [0, 0, 20, 20]}, 400, "label"),
        ({"box": [0, 0, 20, 20], "label": "x", "hash": "not-this"}, 409, "changed since"),
        ({"box": [0, 0, 20, 20], "label": "x", "hash": 5}, 400, "hash"),
    ],
)
def test_bad_boxes_are_4xx_with_a_json_error_and_nothing_written(client, body, status, words):
    i = first_id(client)
    version = client.get("/api/library").get_json()
    answer = client.post(f"/api/images/{i}/boxes", json=body, headers=CSRF)
    assert answer.status_code == status, answer.get_json()
    assert words in answer.get_json()["error"]
    assert listing(client, i)["boxes"] == []
    assert client.get("/api/library").get_json() == version


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, 'send "box", "label" or both'),
        ({"label": None}, '"label" must be a non-empty string, not null'),
        ({"box": None}, '"box" must be four numbers [x0, y0, x1, y1], not null'),
        ({"box": None, "label": "other"}, '"box" must be four numbers'),
    ],
)
def test_a_patch_without_a_value_is_400_and_changes_nothing(client, body, words):
    i = first_id(client)
    made = client.post(
        f"/api/images/{i}/boxes", json={"box": [1, 2, 30, 40], "label": "Thing"}, headers=CSRF
    ).get_json()["box"]
    answer = client.patch(f"/api/images/{i}/boxes/{made['id']}", json=body, headers=CSRF)
    assert answer.status_code == 400, answer.get_json()
    assert words in answer.get_json()["error"]
    assert listing(client, i)["boxes"] == [made]  # not even "updated" moved on


def test_unknown_ids_are_404_and_cross_site_writes_403(client):
    answer = client.post("/api/images/999999/boxes", json={"box": [0, 0, 5, 5], "label": "x"})
    assert answer.status_code == 404 and "no image with id 999999" in answer.get_json()["error"]
    assert client.get("/api/images/999999/boxes").status_code == 404
    i = first_id(client)
    patched = client.patch(f"/api/images/{i}/boxes/77", json={"label": "x"}, headers=CSRF)
    assert patched.status_code == 404
    refused = client.post(
        f"/api/images/{i}/boxes", json={"box": [0, 0, 5, 5], "label": "x"}, headers=CROSS_SITE
    )
    assert refused.status_code == 403 and "cross-site" in refused.get_json()["error"]
    assert listing(client, i)["boxes"] == []


def test_a_box_of_one_image_is_not_changed_through_another(client):
    ids = [c["id"] for c in client.get("/api/images?limit=2").get_json()["images"]]
    made = client.post(
        f"/api/images/{ids[0]}/boxes", json={"box": [0, 0, 30, 30], "label": "x"}, headers=CSRF
    ).get_json()["box"]
    url = f"/api/images/{ids[1]}/boxes/{made['id']}"
    assert client.patch(url, json={"label": "y"}, headers=CSRF).status_code == 404
    assert client.delete(url, headers=CSRF).status_code == 404
    assert listing(client, ids[0])["boxes"][0]["label"] == "x"


def test_the_suggested_box_is_accepted_with_a_label(client):
    i = first_id(client)
    answer = client.post(f"/api/images/{i}/boxes/suggest", headers=CSRF)
    assert answer.status_code == 201, answer.get_json()
    suggested = answer.get_json()["box"]
    assert suggested["origin"] == "suggested" and suggested["label"] is None
    doc = listing(client, i)
    x0, y0, x1, y1 = suggested["box"]
    assert 0 <= x0 < x1 <= doc["image"]["width"] and 0 <= y0 < y1 <= doc["image"]["height"]
    url = f"/api/images/{i}/boxes/{suggested['id']}"
    no_label = client.patch(url, json={"box": suggested["box"]}, headers=CSRF)
    assert no_label.status_code == 400 and "no label yet" in no_label.get_json()["error"]
    accepted = client.patch(url, json={"label": "main thing"}, headers=CSRF)
    assert accepted.status_code == 200
    assert accepted.get_json()["box"]["origin"] == "human"
    assert accepted.get_json()["box"]["box"] == suggested["box"]


def test_a_deleted_suggestion_is_not_offered_again(client):
    i = first_id(client)
    assert listing(client, i)["suggestion_dismissed"] is False
    suggested = client.post(f"/api/images/{i}/boxes/suggest", headers=CSRF).get_json()["box"]
    assert listing(client, i)["suggestion_dismissed"] is False  # offered, not yet dismissed
    url = f"/api/images/{i}/boxes/{suggested['id']}"
    assert client.delete(url, headers=CSRF).get_json() == {"deleted": 1}
    doc = listing(client, i)
    assert doc["boxes"] == [] and doc["suggestion_dismissed"] is True
    # A human box deleted is just gone: it does not dismiss another image's suggestion.
    other = [r["id"] for r in client.get("/api/images?limit=2").get_json()["images"]][1]
    made = client.post(
        f"/api/images/{other}/boxes", json={"box": [0, 0, 30, 30], "label": "x"}, headers=CSRF
    ).get_json()["box"]
    client.delete(f"/api/images/{other}/boxes/{made['id']}", headers=CSRF)
    assert listing(client, other)["suggestion_dismissed"] is False


def test_search_with_a_library_images_box(client):
    i = first_id(client)
    doc = listing(client, i)
    w, h = doc["image"]["width"], doc["image"]["height"]
    box = f"{w // 4},{h // 4},{3 * w // 4},{3 * h // 4}"
    answer = client.post(
        "/api/search", data={"image_id": str(i), "box": box, "k": "5"}, headers=CSRF
    )
    assert answer.status_code == 200, answer.get_json()
    found = answer.get_json()
    assert found["box"] == [w // 4, h // 4, 3 * w // 4, 3 * h // 4]
    # A library image is its own link (?image=ID): nothing is kept as an upload.
    assert len(found["results"]) == 5 and found["query"] is None
    again = client.post(
        "/api/search", data={"image_id": str(i), "box": box, "k": "5"}, headers=CSRF
    ).get_json()
    assert [r["id"] for r in again["results"]] == [r["id"] for r in found["results"]]
    missing = client.post("/api/search", data={"image_id": "999999", "box": box}, headers=CSRF)
    assert missing.status_code == 404
    outside = client.post(
        "/api/search", data={"image_id": str(i), "box": f"0,0,{w + 5},{h}"}, headers=CSRF
    )
    assert outside.status_code == 400 and "outside" in outside.get_json()["error"]


def test_no_suggestion_when_the_main_object_is_the_whole_picture(client, monkeypatch):
    """A localisation with no evidence (the whole image) is no suggestion: nothing stored."""
    import numpy as np

    from lookalike.search.localize import Localization
    from lookalike.webapp import boxes as web_boxes

    i = first_id(client)
    doc = listing(client, i)["image"]
    whole = Localization((0, 0, doc["width"], doc["height"]), np.zeros((7, 7)), True)
    for found in (whole, whole._replace(found=False)):
        monkeypatch.setattr(web_boxes, "localize", lambda embedder, image, f=found: f)
        answer = client.post(f"/api/images/{i}/boxes/suggest", headers=CSRF)
        assert answer.status_code == 200 and answer.get_json() == {"box": None, "found": False}
    assert listing(client, i)["boxes"] == []
