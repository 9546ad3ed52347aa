"""The server-wide decode budget: pixels in flight across concurrent requests. Tested
with threads and events only (no timing): who waits, who runs, who is refused."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from lookalike.indexer.images import decoded_pixels
from lookalike.webapp.budget import PixelBudget, ServerBusy
from tests.support.webapp import CSRF, build_library, make_app, photos, upload


def test_reservations_within_the_budget_run_together():
    budget = PixelBudget(100)
    with budget.reserve(40), budget.reserve(60):
        assert budget.in_flight == 100
    assert budget.in_flight == 0


def test_a_reservation_past_the_budget_waits_until_pixels_come_back():
    waited = threading.Event()
    budget = PixelBudget(100, wait_s=600, on_wait=lambda _n: waited.set())
    order = []

    def second():
        with budget.reserve(60):
            order.append("second runs")

    with budget.reserve(60):
        thread = threading.Thread(target=second)
        thread.start()
        assert waited.wait(600)  # it is waiting: the budget is spent
        assert budget.waiting == 1 and budget.in_flight == 60
        order.append("first done")
    thread.join(600)
    assert order == ["first done", "second runs"]
    assert budget.in_flight == 0 and budget.waiting == 0


def test_one_image_larger_than_the_budget_runs_alone():
    budget = PixelBudget(100, wait_s=0)
    with budget.reserve(10**9) as held:
        assert held == 100
        with pytest.raises(ServerBusy), budget.reserve(1):
            pass
    with budget.reserve(10**9):
        pass


def test_a_spent_budget_refuses_after_the_wait_and_keeps_its_count():
    budget = PixelBudget(100, wait_s=0)
    with budget.reserve(80):
        with pytest.raises(ServerBusy, match="busy decoding"), budget.reserve(30):
            pass
        assert budget.in_flight == 80
    assert budget.in_flight == 0


def test_an_error_inside_gives_the_pixels_back():
    budget = PixelBudget(100, wait_s=0)
    with pytest.raises(RuntimeError), budget.reserve(100):
        raise RuntimeError("decoder failed")
    with budget.reserve(100):
        pass


def test_memory_is_handed_back_when_a_large_burst_ends():
    trims = []
    budget = PixelBudget(100_000_000, release_memory=lambda: trims.append(1))
    with budget.reserve(1_000):
        pass
    assert trims == []  # small decodes: nothing to hand back
    with budget.reserve(30_000_000):
        with budget.reserve(30_000_000):
            pass
        assert trims == []  # still one in flight
    assert trims == [1]


def gif_canvas(width: int, height: int) -> bytes:
    """A few bytes that decode to a width x height canvas (a 1x1 GIF frame)."""
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes(data)


def test_decoded_pixels_reads_the_header_and_the_jpeg_draft():
    assert decoded_pixels(gif_canvas(7000, 7000)) == 49_000_000
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(out, "JPEG")
    assert decoded_pixels(out.getvalue()) == 12_000_000
    assert decoded_pixels(out.getvalue(), min_side=256) == 500 * 375  # 1/8 draft
    assert decoded_pixels(b"not an image") == 0


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("budgetlib"))


def test_a_search_while_the_budget_is_spent_is_503_then_runs(library, tmp_path):
    config = {"DECODE_BUDGET_PIXELS": 1_000_000, "DECODE_WAIT_S": 0}
    app = make_app(library, THUMBNAIL_DIR=str(tmp_path / "thumbs"), **config)
    client = app.test_client()
    budget = app.extensions["lookalike.decode_budget"]
    query = sorted(next(p for p in photos().iterdir() if p.is_dir()).glob("*.jpg"))[0]
    with budget.reserve(1_000_000):  # other requests' decodes
        response = client.post("/api/search", data=upload(query.read_bytes()), headers=CSRF)
        assert response.status_code == 503
        assert "busy decoding" in response.get_json()["error"]
        card = client.get("/api/images?limit=1").get_json()["images"][0]
        assert client.get(f"/api/images/{card['id']}/preview").status_code == 503
    response = client.post("/api/search", data=upload(query.read_bytes(), k=2), headers=CSRF)
    assert response.status_code == 200
    assert budget.in_flight == 0
