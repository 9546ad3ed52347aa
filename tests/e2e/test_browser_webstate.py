"""The view in the URL, in a real browser (issue 16): the library page's filter, label
and pages, and a search's filter and page, survive Back, a reload and a shared link (a
new browser context). Screenshots at 1280 and 390 px go to test-artifacts/
(``webstate-*``). Needs Debian's chromium.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser

PAGE_SIZE = 60  # the library page's (webapp/settings.py PAGE_SIZE)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """10 classes x 13 images, 2 labelled a class: 110 unlabelled, two library pages."""
    base = tmp_path_factory.mktemp("webstate")
    copy_slice(base / "photos", classes=10, per_class=13)
    lib = base / "lib"
    run_cli(
        "index", str(base / "photos"), "--library", str(lib), "--labels-from-folders",
        "--labels-per-class", "2", "-q",
    )  # fmt: skip
    server = ServerProcess(lib)
    yield server, base / "photos"
    server.stop()


def shots(page, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")  # sticky bars drawn at the top
        page.wait_for_timeout(100)  # a layout pass after the resize
        page.screenshot(path=str(ARTIFACTS / f"webstate-{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} is {scroll} px wide at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


def ids(page, grid: str, count: int) -> list[str]:
    cards = page.locator(f"{grid} .card")
    expect(cards).to_have_count(count)
    return cards.evaluate_all("cs => cs.map(c => c.dataset.id)")


def in_new_context(browser, url: str, grid: str, count: int) -> list[str]:
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        fresh = other.new_page()
        fresh.goto(url)
        return ids(fresh, grid, count)
    finally:
        other.close()


def test_library_filter_and_page_two_survive_back_reload_and_a_shared_link(page, browser, library):
    server, _ = library
    page.goto(server.url + "/library")
    ids(page, "#grid", PAGE_SIZE)
    page.click("#filters [data-filter=unlabelled]")
    page.wait_for_url("**/library?filter=unlabelled")
    first = ids(page, "#grid", PAGE_SIZE)
    page.click("#more")
    page.wait_for_url("**/library?filter=unlabelled&pages=2")
    shown = ids(page, "#grid", 110)
    assert shown[:PAGE_SIZE] == first and len(set(shown)) == 110
    shared = page.url
    shots(page, "library-pages")
    target = page.locator("#grid .card").nth(100)
    target.scroll_into_view_if_needed()
    y = page.evaluate("window.scrollY")
    assert y > 1000
    target.click()
    page.wait_for_url(f"**/images/{shown[100]}")
    page.go_back()
    page.wait_for_url(shared)
    assert ids(page, "#grid", 110) == shown
    expect(page.locator("#filters .on")).to_have_attribute("data-filter", "unlabelled")
    page.wait_for_function(f"Math.abs(window.scrollY - {y}) < 2")  # where it was
    page.reload()
    assert ids(page, "#grid", 110) == shown
    page.wait_for_function(f"Math.abs(window.scrollY - {y}) < 2")
    assert in_new_context(browser, shared, "#grid", 110) == shown
    page.go_back()  # the filter before: all images, one page
    page.wait_for_url(server.url + "/library")
    expect(page.locator("#filters .on")).to_have_attribute("data-filter", "all")
    ids(page, "#grid", PAGE_SIZE)


def test_library_label_filter_in_the_url(page, browser, library):
    server, photos = library
    name = sorted(p.name for p in photos.iterdir())[3]
    page.goto(server.url + "/library")
    ids(page, "#grid", PAGE_SIZE)
    page.select_option("#label-select", name)
    page.wait_for_url(f"**/library?label={name}")
    shown = ids(page, "#grid", 2)
    assert in_new_context(browser, page.url, "#grid", 2) == shown
    page.go_back()
    page.wait_for_url(server.url + "/library")
    expect(page.locator("#label-select")).to_have_value("")


def test_search_filter_and_page_survive_back_reload_and_a_shared_link(page, browser, library):
    server, photos = library
    query = sorted(sorted(photos.iterdir())[2].glob("*.jpg"))[0]
    page.goto(server.url + "/")
    page.set_input_files("#file", str(query))
    ids(page, "#results", 24)
    page.select_option("#k", "12")
    page.wait_for_url("**k=12**")
    everything = ids(page, "#results", 12)
    page.select_option("#filter", "unlabelled")
    page.wait_for_url("**filter=unlabelled**")
    unlabelled_first = ids(page, "#results", 12)
    assert unlabelled_first != everything
    page.click("#next")
    page.wait_for_url("**page=2**")
    second = ids(page, "#results", 12)
    assert not set(second) & set(unlabelled_first)
    expect(page.locator("#page-no")).to_have_text("page 2")
    shared = page.url
    shots(page, "search-page-two")
    page.locator("#results .card").nth(3).click()
    page.wait_for_url(f"**/images/{second[3]}")
    page.go_back()
    page.wait_for_url(shared)
    assert ids(page, "#results", 12) == second
    expect(page.locator("#filter")).to_have_value("unlabelled")
    page.reload()
    assert ids(page, "#results", 12) == second
    assert in_new_context(browser, shared, "#results", 12) == second
    page.go_back()  # page 1 of the filter, in the same document
    page.wait_for_url(lambda url: "filter=unlabelled" in url and "page=" not in url)
    expect(page.locator("#page-no")).to_have_text("page 1")
    assert ids(page, "#results", 12) == unlabelled_first


def test_a_library_image_search_link(page, library):
    server, _ = library
    page.goto(server.url + "/library?filter=labelled")
    target = ids(page, "#grid", 20)[7]
    page.goto(f"{server.url}/?image={target}&k=12&filter=labelled&mode=fast")
    found = ids(page, "#results", 12)
    assert found[0] == target  # a labelled image finds itself first
    expect(page.locator("#filter")).to_have_value("labelled")
    assert page.locator("#query-img").evaluate("i => i.naturalWidth") > 0
    spans = page.locator("#results .card .chips span")
    chips = spans.evaluate_all("cs => cs.map(c => c.className)")
    assert chips == ["chip human"] * 12
