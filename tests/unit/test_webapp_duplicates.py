"""Duplicates, "keep this one", hiding and removing an image, via Flask's test client."""

from __future__ import annotations

import pytest

from tests.support.webapp import CSRF, build_duplicate_library, copy_library, embedder, make_app


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_duplicate_library(tmp_path_factory.mktemp("duplib"))


@pytest.fixture()
def app(source, tmp_path):
    return make_app(copy_library(source[0], tmp_path / "library"))


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def named(source, client):
    """name -> image id of the library's named files."""
    paths = {str(p): name for name, p in source[1].items()}
    ids = client.application.extensions["lookalike"].ids_of_paths(paths)
    return {paths[p]: i for p, i in ids.items()}


def groups(client, **args) -> list[dict]:
    response = client.get("/api/duplicates", query_string=args)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["groups"]


def test_groups_of_copies_largest_first_with_the_one_to_keep_first(client, named):
    found = groups(client)
    assert [g["size"] for g in found] == [3, 2]
    first = found[0]
    assert first["keep"] == named["a"] == first["members"][0]["id"]
    assert {m["id"] for m in first["members"]} == {named["a"], named["a-small"], named["a-cropped"]}
    assert first["members"][0]["kind"] == "best" and first["members"][0]["thumbnail_url"]
    assert {m["kind"] for m in first["members"][1:]} <= {"resized", "cropped", "re-encoded"}
    assert {m["id"] for m in found[1]["members"]} == {named["b"], named["b-small"]}


def test_the_threshold_is_checked_and_changes_the_candidates(client):
    assert client.get("/api/duplicates?threshold=2").status_code == 400
    assert client.get("/api/duplicates?threshold=x").status_code == 400
    # the threshold bounds the vector candidates (the perceptual hashes propose theirs too)
    strict = client.get("/api/duplicates?threshold=1.0").get_json()
    loose = client.get("/api/duplicates?threshold=0.3").get_json()
    assert strict["threshold"] == 1.0 and strict["candidates"] < loose["candidates"]


def test_keep_this_one_puts_the_marked_copy_first(client, named):
    ids = [m["id"] for m in groups(client)[0]["members"]]
    response = client.post(
        f"/api/images/{named['a-small']}/keep", json={"group": ids}, headers=CSRF
    )
    assert response.status_code == 200
    first = groups(client)[0]
    assert first["keep"] == named["a-small"] and first["members"][0]["marked"]
    bad = client.post(f"/api/images/{named['a']}/keep", json={"group": "x"}, headers=CSRF)
    assert bad.status_code == 400 and "group" in bad.get_json()["error"]


@pytest.mark.parametrize(
    ("group", "words"),
    [
        (lambda me, others: others, "the group must include image {me} itself"),
        (lambda me, others: [me, 99999], "ids of no image in the library: 99999"),
        (lambda me, others: [me, True], "group must be a non-empty list of image ids"),
        (lambda me, others: [], "group must be a non-empty list of image ids"),
    ],
    ids=["without-the-image", "unknown-id", "a-boolean", "empty"],
)
def test_keep_refuses_a_group_without_the_image_or_with_unknown_ids(client, named, group, words):
    ids = [m["id"] for m in groups(client)[0]["members"]]
    me = named["a-small"]
    others = [i for i in ids if i != me]
    response = client.post(
        f"/api/images/{me}/keep", json={"group": group(me, others)}, headers=CSRF
    )
    assert response.status_code == 400
    assert words.format(me=me) in response.get_json()["error"]
    assert groups(client)[0]["keep"] != me  # nothing marked


def test_a_hidden_image_is_out_of_results_and_groups_until_shown(client, named):
    def similar_ids():
        doc = client.get(f"/api/images/{named['a']}/similar?k=9").get_json()
        return {r["id"] for r in doc["results"]}

    assert named["a-small"] in similar_ids()
    hide = {"hidden": True}
    assert (
        client.put(f"/api/images/{named['a-small']}/hidden", json=hide, headers=CSRF).status_code
        == 200
    )
    assert named["a-small"] not in similar_ids()
    # a page still holds k results: the hidden image's place goes to the next one
    three = client.get(f"/api/images/{named['a']}/similar?k=3").get_json()["results"]
    assert len(three) == 3 and named["a-small"] not in {r["id"] for r in three}
    assert named["a-small"] not in {m["id"] for g in groups(client) for m in g["members"]}
    doc = client.get(f"/api/images/{named['a-small']}")
    assert doc.status_code == 200 and doc.get_json()["hidden"] is True  # still there, marked
    show = {"hidden": False}
    assert (
        client.put(f"/api/images/{named['a-small']}/hidden", json=show, headers=CSRF).status_code
        == 200
    )
    assert named["a-small"] in similar_ids()
    assert client.get(f"/api/images/{named['a-small']}").get_json()["hidden"] is False
    bad = client.put(f"/api/images/{named['a']}/hidden", json={"hidden": "yes"}, headers=CSRF)
    assert bad.status_code == 400


def test_removing_an_image_keeps_the_file_and_indexing_does_not_bring_it_back(
    client, app, named, source
):
    from lookalike.indexer.batch import IndexOptions, index_paths
    from lookalike.indexer.store.library import Library

    target = named["b-small"]
    response = client.delete(f"/api/images/{target}", headers=CSRF)
    assert response.status_code == 200 and response.get_json()["removed"]
    assert source[1]["b-small"].exists()
    assert client.get(f"/api/images/{target}").status_code == 404
    assert [g["size"] for g in groups(client)] == [3]
    assert client.delete(f"/api/images/{target}", headers=CSRF).status_code == 404
    root = app.extensions["lookalike"].root
    with Library.open(root, readonly=False) as lib:
        index_paths(lib, embedder(), [str(source[1]["b"].parent)], IndexOptions(progress=False))
        assert str(source[1]["b-small"]) not in lib.catalog.ids_of_paths(
            [str(source[1]["b-small"])]
        )


def test_changes_need_the_csrf_header(client, named):
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    assert client.delete(f"/api/images/{named['a']}", headers=cross_site).status_code == 403
    assert client.delete(f"/api/images/{named['a']}", headers=CSRF).status_code == 200


def test_the_duplicates_page_is_served(client):
    page = client.get("/duplicates")
    assert page.status_code == 200 and b"duplicates.js" in page.data
