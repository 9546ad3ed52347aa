"""The search API and the request guards, through Flask's test client over a real library."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support.webapp import CSRF, build_library, make_app, photos, upload


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return make_app(build_library(tmp_path_factory.mktemp("weblib")))


@pytest.fixture()
def client(app):
    return app.test_client()


def query_bytes(cls_index: int = 1) -> tuple[bytes, str]:
    folder = sorted(p for p in photos().iterdir() if p.is_dir())[cls_index]
    path = sorted(folder.glob("*.jpg"))[0]
    return path.read_bytes(), str(path)


def test_health_says_what_the_library_holds(client):
    doc = client.get("/api/health").get_json()
    assert doc["status"] == "ok"
    assert doc["images"] == 20
    assert doc["model"] == "efficientnet-lite0"
    assert doc["text_search"] is False
    assert doc["copy_detection"] is None


def test_search_finds_the_query_itself_first(client):
    data, path = query_bytes()
    response = client.post("/api/search", data=upload(data, k=5), headers=CSRF)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == 5
    assert results[0]["path"] == path
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert set(results[0]) >= {"id", "path", "score", "label", "thumbnail_url"}
    assert results[0]["label"] == path.split("/")[-2]
    assert results[0]["thumbnail_url"].startswith(f"/api/images/{results[0]['id']}/thumbnail")
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "mode, views, reranked", [("fast", 1, False), ("robust", 2, True), (None, 2, True)]
)
def test_search_mode_per_request(app, client, monkeypatch, mode, views, reranked):
    """fast: one model run in vector order; robust: two views, re-ranked (the app's
    default here: the searcher's own, robust; `serve` defaults to fast)."""
    searcher = app.extensions["lookalike"].searcher
    runs, ranks = [], []
    embed, rerank = searcher.embedder.embed, searcher.reranker.rerank
    monkeypatch.setattr(
        searcher.embedder, "embed", lambda b, **kw: runs.append(len(b)) or embed(b, **kw)
    )
    monkeypatch.setattr(
        searcher.reranker, "rerank", lambda *a, **kw: ranks.append(1) or rerank(*a, **kw)
    )
    data, path = query_bytes()
    fields = {"k": 3} if mode is None else {"k": 3, "mode": mode}
    response = client.post("/api/search", data=upload(data, **fields), headers=CSRF)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["path"] == path
    assert (sum(runs), bool(ranks)) == (views, reranked)


def test_unknown_search_mode_is_400(client):
    data, _path = query_bytes()
    response = client.post("/api/search", data=upload(data, mode="best"), headers=CSRF)
    assert response.status_code == 400
    assert "mode must be one of fast, robust" in response.get_json()["error"]


def test_search_sniffs_content_not_the_file_name(client):
    data, path = query_bytes()
    response = client.post("/api/search", data=upload(data, name="notes.txt"), headers=CSRF)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["path"] == path


def test_search_accepts_png(client):
    data, path = query_bytes()
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, "PNG")
    response = client.post("/api/search", data=upload(out.getvalue(), k=3), headers=CSRF)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["path"] == path


def test_search_by_box_uses_the_region(client):
    data, _ = query_bytes()
    width, height = Image.open(io.BytesIO(data)).size
    whole = client.post("/api/search", data=upload(data, k=20), headers=CSRF).get_json()
    box = f"0,0,{width // 2},{height // 2}"
    part = client.post("/api/search", data=upload(data, k=20, box=box), headers=CSRF)
    assert part.status_code == 200
    doc = part.get_json()
    assert doc["box"] == [0, 0, width // 2, height // 2]
    assert all(type(v) is int for v in doc["box"])  # pixels, as object=1 answers
    fractional = upload(data, k=1, box=f"0.4,0.6,{width // 2}.7,{height // 2}.2")
    doc = client.post("/api/search", data=fractional, headers=CSRF).get_json()
    assert doc["box"] == [0, 1, width // 2 + 1, height // 2]  # the whole pixels searched
    assert all(type(v) is int for v in doc["box"])
    # A quarter of the image is a different query: the scores change.
    assert [r["score"] for r in doc["results"]] != [r["score"] for r in whole["results"]]


@pytest.mark.parametrize(
    "box, words",
    [
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("10,10,10,20", "zero or negative area"),
        ("0,0,100000,100000", "outside"),
        ("nan,0,5,5", "finite"),
    ],
)
def test_bad_box_is_400(client, box, words):
    data, _ = query_bytes()
    response = client.post("/api/search", data=upload(data, box=box), headers=CSRF)
    assert response.status_code == 400
    assert words in response.get_json()["error"]


@pytest.mark.parametrize("k", ["0", "-3", "abc", "100000"])
def test_bad_k_is_400(client, k):
    data, _ = query_bytes()
    response = client.post("/api/search", data=upload(data, k=k), headers=CSRF)
    assert response.status_code == 400
    assert "k must" in response.get_json()["error"]


def test_search_without_image_is_400(client):
    response = client.post("/api/search", data={"k": "3"}, headers=CSRF)
    assert response.status_code == 400
    assert "'image'" in response.get_json()["error"]


def test_search_with_empty_image_is_400(client):
    response = client.post("/api/search", data=upload(b""), headers=CSRF)
    assert response.status_code == 400
    assert "empty" in response.get_json()["error"]


def test_search_with_non_image_is_400(client):
    response = client.post("/api/search", data=upload(b"%PDF-1.4 not an image"), headers=CSRF)
    assert response.status_code == 400
    assert "not a readable image" in response.get_json()["error"]


def test_search_with_truncated_jpeg_is_400(client):
    data, _ = query_bytes()
    response = client.post("/api/search", data=upload(data[: len(data) // 3]), headers=CSRF)
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_huge_upload_is_413_json(client):
    big = b"\xff" * (32 * 1024 * 1024 + 1)
    response = client.post("/api/search", data=upload(big), headers=CSRF)
    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]


def test_upload_limit_is_a_setting(tmp_path_factory):
    app = make_app(build_library(tmp_path_factory.mktemp("unused")), MAX_CONTENT_LENGTH=4096)
    data, _ = query_bytes()
    response = app.test_client().post("/api/search", data=upload(data), headers=CSRF)
    assert response.status_code == 413
    assert response.is_json


def test_text_search_on_a_cnn_library_says_why_not(client):
    response = client.post("/api/search", json={"text": "a red car"}, headers=CSRF)
    assert response.status_code == 400
    assert "CLIP" in response.get_json()["error"]


@pytest.mark.parametrize("body", [{"text": ""}, {"text": 5}, {}])
def test_text_search_needs_text(client, body):
    response = client.post("/api/search", json=body, headers=CSRF)
    assert response.status_code == 400


def test_malformed_json_is_400(client):
    response = client.post(
        "/api/search", data="{nope", content_type="application/json", headers=CSRF
    )
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]


def test_get_on_search_is_405_json(client):
    response = client.get("/api/search")
    assert response.status_code == 405
    assert "error" in response.get_json()


# -- cross-site protection ----------------------------------------------------
def test_post_from_a_client_that_is_no_browser_needs_no_header(client):
    """No Sec-Fetch-Site and no Origin: curl or a script, not a page of another site."""
    data, _ = query_bytes()
    response = client.post("/api/search", data=upload(data, k=2))
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_post_is_refused_even_with_the_header(client, headers):
    data, _ = query_bytes()
    response = client.post("/api/search", data=upload(data), headers={**CSRF, **headers})
    assert response.status_code == 403
    assert "cross-site" in response.get_json()["error"]


def test_same_origin_post_is_accepted(client):
    data, _ = query_bytes()
    headers = {**CSRF, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/api/search", data=upload(data, k=2), headers=headers)
    assert response.status_code == 200


def test_unknown_host_is_refused_when_hosts_are_set(tmp_path_factory):
    app = make_app(build_library(tmp_path_factory.mktemp("unused")), ALLOWED_HOSTS=["127.0.0.1"])
    client = app.test_client()
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    refused = client.get("/api/health", headers={"Host": "rebind.example:8000"})
    assert refused.status_code == 400
    assert "unknown host" in refused.get_json()["error"]


def test_unexpected_errors_are_500_json_without_traceback(app, client, monkeypatch):
    svc = app.extensions["lookalike"]

    def boom():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(svc, "health", boom)
    response = client.get("/api/health")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error; the server log has the details"}
    assert b"Traceback" not in response.data and b"secret" not in response.data


def test_html_errors_are_friendly_pages(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"There is nothing at this address" in response.data
    assert b"Traceback" not in response.data


def test_api_404_is_json(client):
    response = client.get("/api/no-such-route")
    assert response.status_code == 404
    assert response.get_json() == {"error": "There is nothing at this address."}


def test_formats_handed_to_external_programs_are_refused(client):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    response = client.post("/api/search", data=upload(eps, name="q.jpg"), headers=CSRF)
    assert response.status_code == 400
    assert "not a readable image" in response.get_json()["error"]


def test_a_small_file_with_too_many_pixels_is_refused(client):
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, "PNG")  # 64 megapixels in a few kB
    response = client.post("/api/search", data=upload(out.getvalue()), headers=CSRF)
    assert response.status_code == 400
    assert "too large" in response.get_json()["error"]


def test_object_search_returns_the_box_it_used(client, app):
    assert app.extensions["lookalike"].object_search()  # the default model localises
    data, _ = query_bytes()
    width, height = Image.open(io.BytesIO(data)).size
    response = client.post("/api/search", data=upload(data, k=3, object=1), headers=CSRF)
    assert response.status_code == 200
    doc = response.get_json()
    x0, y0, x1, y1 = doc["box"]
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert all(type(v) is int for v in doc["box"])
    assert len(doc["results"]) == 3


def test_a_box_with_object_or_two_query_images_is_400(client):
    data, _ = query_bytes()
    both = client.post(
        "/api/search", data=upload(data, k=3, object=1, box="1,2,30,40"), headers=CSRF
    )
    assert both.status_code == 400 and "leave out 'box'" in both.get_json()["error"]
    two = {"image": [(io.BytesIO(data), "a.jpg"), (io.BytesIO(data), "b.jpg")], "k": "3"}
    doubled = client.post("/api/search", data=two, headers=CSRF)
    assert doubled.status_code == 400 and "one query image" in doubled.get_json()["error"]


def test_robust_results_say_which_are_copies(client):
    data, path = query_bytes(2)
    for mode, first in (("robust", "copy"), ("fast", None)):
        form = upload(data, k=6, mode=mode)
        results = client.post("/api/search", data=form, headers=CSRF).get_json()["results"]
        assert results[0]["path"] == path and results[0]["match"] == first
        assert results[-1]["match"] is None  # a look-alike


def test_an_uploaded_query_is_kept_under_its_content_id(client):
    data, path = query_bytes(2)
    first = client.post("/api/search", data=upload(data, k=4), headers=CSRF).get_json()
    key = first["query"]
    assert len(key) == 24
    again = client.post("/api/search", data={"query": key, "k": "4"}, headers=CSRF)
    assert again.status_code == 200
    assert [r["id"] for r in again.get_json()["results"]] == [r["id"] for r in first["results"]]
    image = client.get(f"/api/queries/{key}")
    assert (image.status_code, image.mimetype, image.data) == (200, "image/jpeg", data)
    gone = client.post("/api/search", data={"query": "0" * 24}, headers=CSRF)
    assert gone.status_code == 404 and "upload it again" in gone.get_json()["error"]
    assert client.get("/api/queries/nonsense").status_code == 404


def test_the_query_store_is_bounded_in_count_and_bytes():
    from lookalike.webapp.queries import QueryStore
    from lookalike.webapp.services import NotFound

    store = QueryStore(keep=2, keep_bytes=10)
    a, b = store.put(b"aaaa"), store.put(b"bbbb")
    store.get(a)  # used: b is now the oldest
    c = store.put(b"cccc")
    assert store.get(a) == b"aaaa" and store.get(c) == b"cccc"
    with pytest.raises(NotFound, match="upload it again"):
        store.get(b)
    store.put(b"x" * 9)  # over the byte bound: all older ones go
    with pytest.raises(NotFound, match="upload it again"):
        store.get(a)


def test_search_pages_and_filters(client):
    data, _ = query_bytes()

    def search(**fields):
        answer = client.post("/api/search", data=upload(data, mode="fast", **fields), headers=CSRF)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    whole = [r["id"] for r in search(k=20)["results"]]
    assert len(whole) == 20
    pages = [search(k=6, page=p) for p in (1, 2, 3, 4)]
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    assert [p["more"] for p in pages] == [True, True, True, False]
    assert [r["id"] for p in pages for r in p["results"]] == whole
    assert search(k=6, page=5)["results"] == []

    labelled = search(k=24, filter="labelled")["results"]
    assert len(labelled) == 18 and all(r["label"] for r in labelled)
    assert [r["id"] for r in labelled] == [i for i in whole if i in {r["id"] for r in labelled}]
    unlabelled = search(k=24, filter="unlabelled")["results"]
    assert len(unlabelled) == 2 and not any(r["label"] for r in unlabelled)
    assert [r["tag"]["label"] is None for r in search(filter="unknown")["results"]] == [True]
    name = labelled[0]["label"]
    one = search(k=3, label=name)
    assert one["more"] and all(r["label"] == name for r in one["results"])
    second = search(k=3, label=name, page=2)
    assert not second["more"] and all(r["label"] == name for r in second["results"])
    assert len(one["results"]) + len(second["results"]) == 5
    # a label filter matches as labels do: in another case, with spaces around
    shouted = search(k=3, label=f" {name.upper()} ")
    assert [r["id"] for r in shouted["results"]] == [r["id"] for r in one["results"]]
    browsed = client.get("/api/images", query_string={"label": name.upper()}).get_json()
    assert len(browsed["images"]) == 5
    ids = client.get("/api/images/ids", query_string={"label": name.upper()}).get_json()
    assert len(ids["ids"]) == 5


@pytest.mark.parametrize(
    "fields, words",
    [({"filter": "errors"}, "unknown filter"), ({"page": "0"}, "page"), ({"page": "x"}, "page")],
)
def test_bad_page_or_filter_is_400(client, fields, words):
    data, _ = query_bytes()
    answer = client.post("/api/search", data=upload(data, **fields), headers=CSRF)
    assert answer.status_code == 400 and words in answer.get_json()["error"]


def test_search_by_a_library_image(client):
    ids = client.get("/api/images/ids").get_json()["ids"]
    form = {"image_id": str(ids[3]), "k": "5", "mode": "fast"}
    answer = client.post("/api/search", data=form, headers=CSRF)
    assert answer.status_code == 200, answer.get_json()
    doc = answer.get_json()
    assert doc["results"][0]["id"] == ids[3] and doc["query"] is None
    assert doc["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    missing = client.post("/api/search", data={"image_id": "999999"}, headers=CSRF)
    assert missing.status_code == 404
    bad = client.post("/api/search", data={"image_id": "x"}, headers=CSRF)
    assert bad.status_code == 400 and "image_id" in bad.get_json()["error"]
