"""Bulk label edits with undo, select-all-matching ids and the label-next queue, via Flask."""

from __future__ import annotations

import pytest

from tests.support.webapp import CSRF, build_library, copy_library, make_app


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("weblib"))


@pytest.fixture()
def client(source, tmp_path):
    return make_app(copy_library(source, tmp_path / "library")).test_client()


def state(client) -> dict[int, tuple]:
    """id -> (human label, predicted tag label or '-', for every image of the library."""
    ids = client.get("/api/images/ids").get_json()["ids"]
    out = {}
    for i in ids:
        doc = client.get(f"/api/images/{i}").get_json()
        tag = doc["tag"]
        out[i] = (doc["label"] and doc["label"]["label"], tag["label"] if tag else "-")
    return out


def bulk(client, **body):
    return client.post("/api/labels/bulk", json=body, headers=CSRF)


def test_bulk_label_then_undo_restores_labels_and_tags(client):
    before = state(client)
    ids = sorted(before)
    answer = bulk(client, action="label", ids=ids, label="Thing")
    assert answer.status_code == 200, answer.get_json()
    doc = answer.get_json()
    assert doc["images"] == len(ids) and doc["changed"] == len(ids)
    after = state(client)
    assert all(v == ("Thing", "-") for v in after.values())
    # Case-insensitive: a later "thing" takes the first spelling.
    bulk(client, action="relabel", ids=ids[:2], label="  THING ")
    assert state(client)[ids[0]] == ("Thing", "-")
    undone = client.post("/api/labels/undo", json={"undo": doc["undo"]}, headers=CSRF)
    assert undone.get_json() == {"restored": len(ids), "changed_since": []}
    assert state(client) == before
    again = client.post("/api/labels/undo", json={"undo": doc["undo"]}, headers=CSRF)
    assert again.status_code == 400 and "undo token" in again.get_json()["error"]


def test_undo_leaves_labels_changed_since_by_hand(client):
    before = state(client)
    ids = sorted(before)
    doc = bulk(client, action="label", ids=ids, label="Thing").get_json()
    hand = client.put(f"/api/images/{ids[0]}/label", json={"label": "Other"}, headers=CSRF)
    assert hand.status_code == 200
    assert client.delete(f"/api/images/{ids[1]}/label", headers=CSRF).status_code == 200
    undone = client.post("/api/labels/undo", json={"undo": doc["undo"]}, headers=CSRF)
    assert undone.get_json() == {"restored": len(ids) - 2, "changed_since": ids[:2]}
    after = state(client)
    assert after[ids[0]] == ("Other", "-") and after[ids[1]][0] is None
    assert {i: after[i] for i in ids[2:]} == {i: before[i] for i in ids[2:]}


def test_bulk_with_an_unknown_id_changes_nothing_and_names_it(client):
    before = state(client)
    ids = sorted(before)
    answer = bulk(client, action="label", ids=[*ids, 999999], label="Thing")
    assert answer.status_code == 400
    assert "999999" in answer.get_json()["error"]
    assert state(client) == before
    for bad in ([True], ["1"], [1.5], [], [2**70]):
        answer = bulk(client, action="remove", ids=bad)
        assert answer.status_code == 400, bad
    assert bulk(client, action="label", ids=ids, label="=cmd|x").status_code == 400
    assert bulk(client, action="paint", ids=ids).status_code == 400
    assert state(client) == before


def test_bulk_remove_and_accept(client):
    before = state(client)
    tagged = [i for i, (_, tag) in before.items() if tag not in ("-", None)]
    unknown = [i for i, (_, tag) in before.items() if tag is None]
    labelled = [i for i, (label, _) in before.items() if label]
    doc = bulk(client, action="accept", ids=tagged + unknown).get_json()
    assert doc["changed"] == len(tagged) and doc["skipped"] == unknown
    now = state(client)
    assert all(now[i] == (before[i][1], "-") for i in tagged)
    doc = bulk(client, action="remove", ids=labelled[:3]).get_json()
    assert doc["changed"] == 3
    assert all(state(client)[i][0] is None for i in labelled[:3])


def test_matching_ids_follow_the_browse_filters(client):
    every = client.get("/api/images/ids").get_json()["ids"]
    labelled = client.get("/api/images/ids?filter=labelled").get_json()["ids"]
    unlabelled = client.get("/api/images/ids?filter=unlabelled").get_json()["ids"]
    assert sorted(labelled + unlabelled) == every and unlabelled
    assert client.get("/api/images/ids?filter=errors").status_code == 400


def test_label_next_queue(client):
    doc = client.get("/api/labels/next?n=5").get_json()
    queue = doc["queue"]
    assert 1 <= len(queue) <= 5
    labelled = set(client.get("/api/images/ids?filter=labelled").get_json()["ids"])
    assert not {q["id"] for q in queue} & labelled
    assert all(set(q) == {"id", "path", "suggestions", "tag", "reason"} for q in queue)
    assert all(q["reason"] for q in queue)
    for q in queue:
        # One measure, best first: the similarity to the label's nearest image.
        sims = [s["similarity"] for s in q["suggestions"]]
        assert all(0 <= v <= 1 for v in sims) and sims == sorted(sims, reverse=True), sims
        tagged = q["tag"] and q["tag"]["label"]
        for s in q["suggestions"]:
            # The tagger's confidence only on its own label.
            assert (s["tag_confidence"] is not None) == (s["label"] == tagged)
    assert queue[0]["suggestions"], "the nearest labelled images suggest a label"
    assert client.get("/api/labels/next?n=0").status_code == 400
    page = client.get("/label")
    assert page.status_code == 200 and b"label-next" in page.data


def test_label_next_serves_the_images_after_the_skipped_ones(client):
    def queue(**args) -> dict:
        response = client.get("/api/labels/next", query_string=args)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    whole = [q["id"] for q in queue(n=10)["queue"]]
    assert len(whole) >= 2  # every unlabelled image of the library
    first = queue(n=1, skip=str(whole[0]))
    assert [q["id"] for q in first["queue"]] == [whole[1]] and first["skipped"] == 1
    rest = queue(n=10, skip=",".join(map(str, whole[:-1])))
    assert [q["id"] for q in rest["queue"]] == whole[-1:]
    # Every image left was skipped: an empty queue says how many.
    none = queue(n=10, skip=",".join(map(str, whole)))
    assert none == {"queue": [], "skipped": len(whole)}
    assert queue(n=10, skip="")["queue"][0]["id"] == whole[0]


@pytest.mark.parametrize("skip", ["x", "0", "1,,2", "-3", "1.5", ",".join(["1"] * 1001)])
def test_label_next_refuses_a_bad_skip(client, skip):
    response = client.get("/api/labels/next", query_string={"n": 5, "skip": skip})
    assert response.status_code == 400
    assert "skip" in response.get_json()["error"]


def test_label_next_puts_the_tag_among_the_look_alikes(client):
    """The image tagged in the fixture (0.87) has its tag's label on the similarity scale,
    ordered with the others, and its confidence beside it."""
    queue = client.get("/api/labels/next?n=10").get_json()["queue"]
    (item,) = [q for q in queue if q["tag"] and q["tag"]["label"]]
    assert item["tag"]["confidence"] == 0.87
    (own,) = [s for s in item["suggestions"] if s["tag_confidence"] is not None]
    assert own["label"] == item["tag"]["label"] and own["tag_confidence"] == 0.87
    assert isinstance(own["similarity"], float)
    (unknown,) = [q for q in queue if q["tag"] and q["tag"]["label"] is None]
    assert all(s["tag_confidence"] is None for s in unknown["suggestions"])


@pytest.mark.parametrize(
    ("ranked", "tag", "words"),
    [
        ([("cup", 0.40), ("chair", 0.30)], None, "far from every label: maybe a new class"),
        ([("cup", 0.62), ("chair", 0.60)], None, "between cup and chair"),
        ([("cup", 0.70), ("chair", 0.50)], None, "not tagged yet; nearest label: cup"),
        ([("cup", 0.70)], {"label": None, "confidence": 0.6}, "the tagger left it unknown"),
        ([("cup", 0.70)], {"label": "cup", "confidence": 0.04}, "the tagger is unsure of cup (4%)"),
        ([("cup", 0.70)], {"label": "cup", "confidence": 0.9}, "many unlabelled images"),
        ([], None, "no labelled image looks like it yet"),
    ],
)
def test_label_next_reason(ranked, tag, words):
    from lookalike.webapp.queue_view import reason

    assert reason(ranked, tag).startswith(words)


def test_bulk_label_without_a_label_says_so_plainly(client):
    ids = client.get("/api/images/ids").get_json()["ids"][:2]
    answer = bulk(client, action="label", ids=ids)
    assert answer.status_code == 400
    assert (
        answer.get_json()["error"] == 'send "label": the label to give the images (action "label")'
    )
