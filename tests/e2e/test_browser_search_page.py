"""The search page in a real browser: a box dragged to the edge of a portrait photo
whose displayed width is fractional, a text link on a library without text search, and
a result count from the URL that the page's list does not offer. Screenshots at 1280x800
and 390x844 go to test-artifacts/ (``searchpage-*``).
Needs Debian's chromium (`apt-get install chromium`, never `playwright install`).
"""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser

SCREENS = ((1280, 800), (390, 844))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A small library of the default (CNN) model: no text search."""
    base = tmp_path_factory.mktemp("searchpage")
    copy_slice(base / "photos", classes=3, per_class=4)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "-q")
    server = ServerProcess(lib)
    yield server
    server.stop()


def shots(page, name: str) -> None:
    for width, height in SCREENS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)  # a layout pass after the resize
        page.screenshot(path=str(ARTIFACTS / f"searchpage-{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} is {scroll} px wide at {width} px"
    page.set_viewport_size({"width": 1280, "height": 800})


def portrait(path, width: int, height: int):
    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(230, 180, 40))
    image.save(path, "JPEG", quality=80)
    return path


def url_box(page) -> list[int]:
    box = page.evaluate("new URLSearchParams(location.search).get('box')")
    return [int(v) for v in box.split(",")]


@pytest.mark.parametrize("size", [(4000, 6000), (1644, 1800)])
def test_a_box_dragged_past_the_corner_ends_at_the_images_edge(page, server, tmp_path, size):
    width, height = size
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(server.url + "/")
    page.set_input_files("#file", str(portrait(tmp_path / "portrait.jpg", width, height)))
    expect(page.locator("#status")).to_contain_text("of the image")
    shown = page.locator("#query-img").evaluate("i => i.getBoundingClientRect().width")
    assert shown != int(shown), "a displayed width that is not a whole number of pixels"
    r = page.locator("#query-img").bounding_box()
    page.mouse.move(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2)
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] + 40, r["y"] + r["height"] + 40, steps=5)
    page.mouse.up()
    expect(page.locator("#status")).to_contain_text("of the region")
    assert not page.locator("#toast.error").is_visible()
    x0, y0, x1, y1 = url_box(page)
    assert (x1, y1) == (width, height)
    assert abs(x0 - width / 2) <= width / 100 and abs(y0 - height / 2) <= height / 100
    # The box drawn covers the image's lower-right quarter, to the pixel.
    drawn = page.locator("#box").bounding_box()
    assert abs(drawn["x"] + drawn["width"] - (r["x"] + r["width"])) < 1.5
    assert abs(drawn["y"] + drawn["height"] - (r["y"] + r["height"])) < 1.5
    if size == (4000, 6000):
        shots(page, "portrait-box")


def test_a_text_link_on_a_library_without_text_search_says_why(page, server):
    page.goto(server.url + "/?text=car")
    status = page.locator("#status")
    expect(status).to_contain_text("Text search for “car”")
    expect(status).to_contain_text("CLIP")  # the API's own reason
    expect(status).to_have_class("status failed")
    assert page.locator("#toast").is_hidden()  # said once, where it stays
    shots(page, "text-without-clip")


def test_a_result_count_the_list_does_not_offer_is_added_and_used(page, server):
    _, doc = server.get("/api/images?limit=1")
    image = doc["images"][0]["id"]
    page.goto(f"{server.url}/?image={image}&k=7")
    expect(page.locator("#results .card")).to_have_count(7)
    expect(page.locator("#k")).to_have_value("7")
    options = page.locator("#k option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["7", "12", "24", "48", "96"]
    assert "k=7" in page.url
    shots(page, "k-from-the-url")
    page.select_option("#k", "12")  # the list's own counts still work
    expect(page.locator("#results .card")).to_have_count(12)
