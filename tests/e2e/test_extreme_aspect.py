"""Images of extreme aspect ratio (a 2x1200 library image, 270:1 queries) never break a
search: geometric verification skips what it cannot handle, through the CLI and the web."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.webapp import CSRF, make_app, upload


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    base = tmp_path_factory.mktemp("aspect")
    photos = base / "photos"
    photos.mkdir()
    for src in dev_images(3, 3):
        shutil.copy(src, photos / f"{src.parent.name}-{src.name}")
    Image.new("RGB", (2, 1200), (200, 30, 30)).save(photos / "sliver.png")
    Image.effect_noise((1200, 2), 60).convert("RGB").save(photos / "strip.png")
    run_cli("index", str(photos), "--library", str(base / "library"))
    return base


def queries(base):
    wide = Image.effect_noise((2700, 10), 80).convert("RGB")  # 270:1
    wide.save(base / "wide.png")
    tall = Image.effect_noise((10, 2700), 80).convert("RGB")
    tall.save(base / "tall.png")
    other = Image.open(dev_images(5, 1)[-1]).convert("RGB")  # not in the library
    other.save(base / "other.jpg")
    return [base / "wide.png", base / "tall.png", base / "other.jpg"]


def test_cli_search_with_verification_survives_extreme_aspect(library):
    for query in queries(library):
        proc = run_cli(
            "search", str(query), "--library", str(library / "library"), "-k", "20", "--json"
        )
        results = json.loads(proc.stdout)
        assert len(results[0]["results"]) == 11, proc.stdout


@pytest.mark.parametrize("mode", ["robust", "fast"])
@pytest.mark.parametrize("extra", [{}, {"object": 1}])
def test_web_search_survives_extreme_aspect(library, mode, extra):
    client = make_app(library / "library").test_client()
    for query in [*queries(library), library / "photos" / "sliver.png"]:
        form = upload(query.read_bytes(), name=query.name, mode=mode, k=5, **extra)
        response = client.post("/api/search", data=form, headers=CSRF)
        assert response.status_code == 200, response.get_json()
        assert len(response.get_json()["results"]) == 5
