"""Text search through the web app, over a CLIP library with a random tiny open_clip model."""

from __future__ import annotations

import pytest

from tests.support.data import dev_images
from tests.support.webapp import CSRF

ARCH = "ViT-S-32-alt"  # the smallest open_clip architecture


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import open_clip
    import torch

    from lookalike.indexer.batch import IndexOptions, index_paths
    from lookalike.indexer.models.registry import load_embedder
    from lookalike.indexer.store.library import Library
    from lookalike.webapp import create_app

    base = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, base / "tiny.pt")
    clip = load_embedder(f"openclip:{ARCH}", weights=base / "tiny.pt")
    with Library.create(base / "lib", clip.info) as lib:
        paths = [str(p) for p in dev_images(2, 2)]
        index_paths(lib, clip, paths, IndexOptions(progress=False))
    return create_app(base / "lib", test_config={"EMBEDDER": clip, "TESTING": True})


def test_health_and_page_offer_text_search(app):
    client = app.test_client()
    assert client.get("/api/health").get_json()["text_search"] is True
    assert b'id="text-form"' in client.get("/").data


def test_text_query_returns_ranked_results(app):
    client = app.test_client()
    response = client.post(
        "/api/search", json={"text": "a photo of a leopard", "k": 3}, headers=CSRF
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == 3
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(r["path"].endswith(".jpg") for r in results)


@pytest.mark.parametrize("text", ["", "   ", "x" * 5000])
def test_bad_text_is_400(app, text):
    response = app.test_client().post("/api/search", json={"text": text}, headers=CSRF)
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_suggestions_are_zero_shot_over_the_label_names(app):
    client = app.test_client()
    ids = [card["id"] for card in client.get("/api/images").get_json()["images"]]
    client.put(f"/api/images/{ids[0]}/label", json={"label": "leopard"}, headers=CSRF)
    client.put(f"/api/images/{ids[1]}/label", json={"label": "face"}, headers=CSRF)
    suggestions = client.get(f"/api/images/{ids[2]}").get_json()["suggestions"]
    assert sorted(s["label"] for s in suggestions) == ["face", "leopard"]
    assert {s["source"] for s in suggestions} == {"clip-zero-shot:labels"}
    assert sum(s["score"] for s in suggestions) == pytest.approx(1.0, abs=1e-3)
