"""What the API says when a request is wrong: in the API's and the pages' terms (its
field names, its buttons), never a terminal command, a placeholder or a flag."""

from __future__ import annotations

import pytest

from lookalike.webapp.pages import mobile_report
from tests.support.webapp import CSRF, build_library, copy_library, make_app, photos, upload

JSON = {**CSRF, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("msglib")
    return make_app(copy_library(build_library(base), base / "own"))


@pytest.fixture()
def client(app):
    return app.test_client()


def error(response, status: int = 400) -> str:
    assert response.status_code == status, response.get_json()
    message = response.get_json()["error"]
    assert "lookalike " not in message and "--" not in message, message
    return message


def query_bytes() -> bytes:
    folder = sorted(p for p in photos().iterdir() if p.is_dir())[1]
    return sorted(folder.glob("*.jpg"))[0].read_bytes()


# -- JSON bodies -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"label": "x"', "Expecting"),
        (b'{"label": NaN}', "NaN"),
        (b'{"k": ' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        (b'{"label": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_a_body_that_is_not_json_says_so_even_with_the_header(client, raw, words):
    message = error(client.put("/api/images/1/label", data=raw, headers=JSON))
    assert message.startswith("the request body is not valid JSON") and words in message


def test_json_that_is_not_an_object_or_a_body_without_the_header(client):
    assert "not a list" in error(client.put("/api/images/1/label", data=b"[1]", headers=JSON))
    plain = client.put("/api/images/1/label", data=b'{"label": "x"}', headers=CSRF)
    assert "Content-Type: application/json" in error(plain)
    # the duplicates routes read their bodies the same way
    hidden = client.put("/api/images/1/hidden", data=b"{bad", headers=JSON)
    assert "not valid JSON" in error(hidden)


# -- search uploads and flags ------------------------------------------------------------
def test_a_truncated_upload_is_named_the_uploaded_image(client):
    data = query_bytes()
    message = error(
        client.post("/api/search", data=upload(data[: len(data) * 6 // 10]), headers=CSRF)
    )
    assert message.startswith("the uploaded image: ") and "<bytes>" not in message


@pytest.mark.parametrize("value, ok", [("1", True), ("yes", True), ("0", True), ("maybe", False)])
def test_object_takes_the_documented_spellings_only(client, value, ok):
    response = client.post(
        "/api/search", data=upload(query_bytes(), k=2, object=value), headers=CSRF
    )
    if ok:
        assert response.status_code == 200, response.get_json()
        assert (response.get_json()["box"] is not None) == (value != "0")
    else:
        assert "object must be 1 or 0" in error(response)


def test_one_query_image_only(client):
    both = upload(query_bytes(), image_id=1)
    message = error(client.post("/api/search", data=both, headers=CSRF))
    assert "give one of 'image'" in message and "image and image_id" in message
    query = client.post("/api/search", data={"query": "0" * 24, "image_id": "1"}, headers=CSRF)
    assert "give one of" in error(query)


# -- labels and tagging ------------------------------------------------------------------
def test_a_bulk_edit_of_an_unknown_id_names_it_without_a_command(client):
    body = {"action": "label", "ids": [987654], "label": "x"}
    message = error(client.post("/api/labels/bulk", json=body, headers=CSRF))
    assert "image id 987654" in message and "nothing was changed" in message


def test_tagging_with_a_confidence_out_of_range_names_the_api_field(client):
    message = error(client.post("/api/tag", json={"min_confidence": 2}, headers=CSRF))
    assert message == "min_confidence must be between 0 and 1, not 2"


# -- the evaluation report on phones -----------------------------------------------------
def test_the_served_report_gets_a_viewport_and_scrolling_tables_once():
    html = "<!doctype html><html><head><meta charset='utf-8'><title>r</title></head><body>"
    served = mobile_report(html)
    assert served.count("name='viewport'") == 1 and "overflow-x:auto" in served
    assert mobile_report(served) == served
