"""Real-browser tests of bulk labelling and the label-next queue (Playwright, Debian's
chromium, over `lookalike serve`): select 20 search results with Shift-click and label
them, undo a bulk edit, run ten queue steps by keyboard alone. Screenshots at 1280 and
390 px wide go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser


def catalog(library: Path) -> sqlite3.Connection:
    return sqlite3.connect(library / "catalog.sqlite", timeout=30)


def labels(library: Path) -> dict[int, str]:
    conn = catalog(library)
    try:
        return dict(conn.execute("SELECT image_id, label FROM labels"))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """10 classes x 6 images, labelled from folders, then half the classes unlabelled."""
    base = tmp_path_factory.mktemp("browser-annotate")
    photos = copy_slice(base / "photos", classes=10, per_class=6)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders", "-q")
    classes = sorted({p.parent.name for p in photos})
    conn = catalog(lib)
    with conn:
        conn.executemany("DELETE FROM labels WHERE label = ?", [(c,) for c in classes[:5]])
    conn.close()
    return lib


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def new_page(browser, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


@pytest.fixture()
def page(browser):
    context, page, errors = new_page(browser, 1280)
    yield page
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def on_screen(page) -> int:
    """Waits until the label-next page's image is on screen with no step on its way
    (keys count only then); its id."""
    expect(page.locator("#label-next[data-image-id]:not([aria-busy])")).to_have_count(1)
    return int(page.locator("#label-next").get_attribute("data-image-id"))


def bulk_posts(page) -> list[str]:
    """The bodies of the page's POST /api/labels/bulk requests, as they are sent."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data) if r.url.endswith("/api/labels/bulk") else None,
    )
    return sent


def search_for(page, server, library, tmp_path) -> None:
    conn = catalog(library)
    (path,) = conn.execute("SELECT path FROM images ORDER BY id LIMIT 1").fetchone()
    conn.close()
    query = tmp_path / "query.jpg"
    shutil.copy(path, query)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(query))
    page.wait_for_selector("#results .card")


def test_shift_click_20_search_results_label_them_and_undo(page, server, library, tmp_path):
    before = labels(library)
    search_for(page, server, library, tmp_path)
    cards = page.locator("#results .card")
    expect(cards).to_have_count(24)
    cards.nth(0).locator(".tick").click()
    cards.nth(19).click(modifiers=["Shift"])
    expect(page.locator(".select-bar .sel-count")).to_have_text("20 images selected")
    expect(page.locator("#results .card.selected")).to_have_count(20)
    ids = [int(cards.nth(i).get_attribute("data-id")) for i in range(20)]
    shot(page, "bulk-selected")
    page.fill(".select-bar .sel-label", "Bulk thing")
    page.click(".select-bar .sel-apply")
    expect(page.locator("#results .chip.human", has_text="Bulk thing")).to_have_count(20)
    after = labels(library)
    assert all(after[i] == "Bulk thing" for i in ids)
    assert {i: v for i, v in after.items() if i not in ids} == {
        i: v for i, v in before.items() if i not in ids
    }
    shot(page, "bulk-labelled")
    page.click(".select-bar .sel-undo")
    expect(page.locator("#results .chip.human", has_text="Bulk thing")).to_have_count(0)
    assert labels(library) == before


def test_ctrl_click_toggles_and_the_select_event_feeds_the_selection(page, server):
    page.goto(server.url + "/library")
    page.wait_for_selector("#grid .card")
    cards = page.locator("#grid .card")
    cards.nth(2).click(modifiers=["Control"])
    cards.nth(4).click(modifiers=["Control"])
    cards.nth(2).click(modifiers=["Control"])
    expect(page.locator("#grid .card.selected")).to_have_count(1)
    first_ids = [int(cards.nth(i).get_attribute("data-id")) for i in range(3)]
    page.evaluate(
        "ids => document.dispatchEvent(new CustomEvent('lookalike:select', {detail: {ids}}))",
        first_ids,
    )
    expect(page.locator("#grid .card.selected")).to_have_count(3)
    page.click(".select-bar .sel-all")
    expect(page.locator(".select-bar .sel-count")).to_have_text("60 images selected")
    shot(page, "library-select-all")
    page.keyboard.press("Escape")
    expect(page.locator("#grid .card.selected")).to_have_count(0)


def test_ten_queue_steps_by_keyboard(page, server, library):
    before = labels(library)
    page.goto(server.url + "/label")
    image = page.locator("#label-next")
    expect(image).to_have_attribute("data-image-id", re.compile(r"\d+"))
    shot(page, "label-next")
    seen, steps = [], []
    for step in range(10):
        current = on_screen(page)
        seen.append(current)
        if step == 3:
            page.keyboard.press("x")  # skip
            steps.append((current, None))
        elif step == 5:
            page.keyboard.type("Queue made")  # a new label, typed: Q starts typing
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")  # out of the box: the keys are shortcuts again
            steps.append((current, "Queue made"))
        else:
            name = page.locator("#ln-suggestions li .name").first.inner_text()
            page.keyboard.press("1")
            steps.append((current, name))
        expect(image).not_to_have_attribute("data-image-id", str(current))
    after = labels(library)
    for image_id, label in steps:
        assert after.get(image_id) == (label or before.get(image_id)), image_id
    assert len(set(seen)) == 10
    # u undoes the last step: its image comes back without the label.
    last_id, _ = steps[-1]
    page.keyboard.press("u")
    expect(image).to_have_attribute("data-image-id", str(last_id))
    assert last_id not in labels(library)
    shot(page, "label-next-after")


def page_image_id(library: Path) -> int:
    conn = catalog(library)
    try:
        return conn.execute("SELECT id FROM images ORDER BY id LIMIT 1").fetchone()[0]
    finally:
        conn.close()


def unlabelled_count(library: Path) -> int:
    conn = catalog(library)
    try:
        sql = "SELECT COUNT(*) FROM images WHERE id NOT IN (SELECT image_id FROM labels)"
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_skip_every_image_then_start_over_and_tap_a_suggestion(page, server, library):
    page.goto(server.url + "/label")
    image = page.locator("#label-next")
    left = unlabelled_count(library)
    seen = []
    for _ in range(left):  # more than one refill's worth of images: each new
        seen.append(str(on_screen(page)))
        page.click("#ln-skip")
        expect(image).not_to_have_attribute("data-image-id", seen[-1])
    assert len(set(seen)) == left > 20
    expect(page.locator("#ln-empty")).to_have_text(
        f"You skipped every image left to label ({left} images). Start over with the skipped images"
    )
    shot(page, "label-next-all-skipped")
    page.click("#ln-restart")
    current = on_screen(page)
    choice = page.locator("#ln-suggestions .ln-choice").first
    name = choice.locator(".name").inner_text()
    choice.click()  # a tap takes the suggestion
    expect(image).not_to_have_attribute("data-image-id", str(current))
    assert labels(library)[current] == name
    page.click("#ln-undo")
    expect(image).to_have_attribute("data-image-id", str(current))
    assert current not in labels(library)


def test_narrow_screens(browser, server, library, tmp_path):
    context, page, errors = new_page(browser, 390)
    try:
        search_for(page, server, library, tmp_path)
        page.locator("#results .card").nth(0).locator(".tick").click()
        page.locator("#results .card").nth(3).click(modifiers=["Shift"])
        expect(page.locator(".select-bar")).to_be_visible()
        shot(page, "bulk-selected-390")
        page.goto(server.url + "/label")
        expect(page.locator("#label-next")).to_have_attribute("data-image-id", re.compile(r"\d+"))
        expect(page.locator("#ln-skip")).to_be_visible()
        shot(page, "label-next-390")
        # nothing passes the right edge: suggestions, the box, the help, a long caption
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(server.url + f"/images/{page_image_id(library)}")
        expect(page.locator("#caption")).to_contain_text("×")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
    assert errors == [], errors


def select_ids(page, ids: list[int]) -> None:
    page.evaluate(
        "ids => document.dispatchEvent(new CustomEvent('lookalike:select', {detail: {ids}}))",
        ids,
    )


def test_double_click_on_label_sends_one_edit_and_undo_restores(page, server, library):
    """A double click labels once; labelling the same images again changes nothing and
    keeps the Undo of the real edit, which puts the labels back."""
    before = labels(library)
    page.goto(server.url + "/library?filter=unlabelled")
    cards = page.locator("#grid .card")
    expect(cards.nth(6)).to_be_visible()
    ids = [int(cards.nth(i).get_attribute("data-id")) for i in range(7)]
    select_ids(page, ids)
    bar = page.locator(".select-bar")
    expect(bar.locator(".sel-count")).to_have_text("7 images selected")
    sent = bulk_posts(page)
    bar.locator(".sel-label").fill("Twice")
    bar.locator(".sel-apply").dblclick()
    expect(page.locator("#toast")).to_have_text("Labelled 7 images")
    assert len(sent) == 1, sent
    assert all(labels(library)[i] == "Twice" for i in ids)
    # The same label on the same images again: nothing changed, and the Undo offered is
    # still the first edit's.
    select_ids(page, ids)
    bar.locator(".sel-apply").click()
    expect(page.locator("#toast")).to_have_text(
        "Nothing changed: the 7 images had that label already"
    )
    assert len(sent) == 2
    bar.locator(".sel-undo").click()
    expect(page.locator("#toast")).to_have_text("Undone for 7 images")
    assert labels(library) == before


def test_in_the_box_every_key_is_text(page, server, library):
    page.goto(server.url + "/label")
    first = on_screen(page)
    name = page.locator("#ln-suggestions li .name").first.inner_text()
    page.keyboard.press("1")  # outside the box: a shortcut
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(first))
    second = on_screen(page)
    assert labels(library)[first] == name
    sent = bulk_posts(page)
    page.click("#ln-input")
    page.keyboard.type("umbrella x9")  # u, x and 9 are text here
    expect(page.locator("#ln-input")).to_have_value("umbrella x9")
    assert on_screen(page) == second and sent == []
    assert labels(library)[first] == name  # "u" undid nothing
    page.keyboard.press("Enter")  # the typed label
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(second))
    on_screen(page)
    assert labels(library)[second] == "umbrella x9"
    expect(page.locator("#ln-input")).to_be_focused()  # still typing: keys stay text
    page.keyboard.press("Escape")  # leaves the box: u undoes again
    expect(page.locator("#ln-input")).not_to_be_focused()
    page.keyboard.press("u")
    expect(page.locator("#label-next")).to_have_attribute("data-image-id", str(second))
    assert second not in labels(library)
    shot(page, "label-next-typed")


def test_enter_and_space_press_the_focused_button(page, server, library):
    page.goto(server.url + "/label")
    first = on_screen(page)
    page.focus("#ln-skip")
    page.keyboard.press("Enter")  # Skip, not suggestion 1
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(first))
    on_screen(page)
    assert first not in labels(library)
    page.focus("#ln-undo")
    page.keyboard.press(" ")  # Undo: the skipped image comes back
    expect(page.locator("#label-next")).to_have_attribute("data-image-id", str(first))
    on_screen(page)
    second_choice = page.locator("#ln-suggestions .ln-choice").nth(1)
    name = second_choice.locator(".name").inner_text()
    second_choice.focus()
    page.keyboard.press("Enter")  # that suggestion, not the first
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(first))
    assert labels(library)[first] == name
    # A blank box counts as empty: Enter takes suggestion 1, as the hint says.
    third = on_screen(page)
    top = page.locator("#ln-suggestions li .name").first.inner_text()
    page.fill("#ln-input", "   ")
    page.keyboard.press("Enter")
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(third))
    assert labels(library)[third] == top
    expect(page.locator(".keys-hint")).to_contain_text("with suggestion 1 when the box is empty")
    expect(page.locator("#ln-save")).to_have_attribute("title", re.compile("suggestion 1"))


def test_a_double_key_labels_one_image_and_never_one_not_on_screen(page, server, library):
    page.goto(server.url + "/label")
    first = on_screen(page)
    held = []
    page.route("**/api/labels/bulk", lambda route: held.append(route))
    sent = bulk_posts(page)
    with page.expect_request("**/api/labels/bulk"):
        page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # while the first is on its way: ignored
    page.keyboard.press("1")
    page.keyboard.press("x")
    expect(page.locator("#label-next")).to_have_attribute("aria-busy", "true")
    assert len(sent) == 1, sent
    # The next image's preview is held: it is not on screen, so keys do not act on it.
    previews = []
    page.route("**/api/images/*/preview", lambda route: previews.append(route))
    held[0].continue_()
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(first))
    second = int(page.locator("#label-next").get_attribute("data-image-id"))
    page.keyboard.press("1")
    page.keyboard.press("x")
    page.locator("#ln-suggestions .ln-choice").first.click()
    expect(page.locator("#label-next")).to_have_attribute("aria-busy", "true")
    assert len(sent) == 1, sent
    expect(page.locator("#label-next")).to_have_attribute("data-image-id", str(second))
    assert first in labels(library) and second not in labels(library)
    for route in previews:
        route.continue_()
    page.unroute("**/api/labels/bulk")
    page.unroute("**/api/images/*/preview")
    assert on_screen(page) == second
    page.keyboard.press("1")  # now on screen: it counts
    expect(page.locator("#label-next")).not_to_have_attribute("data-image-id", str(second))
    assert second in labels(library) and len(sent) == 2


def test_the_keyboard_selects_cards_by_their_ticks(page, server):
    page.goto(server.url + "/library")
    cards = page.locator("#grid .card")
    expect(cards.nth(3)).to_be_visible()
    page.keyboard.press("Tab")  # keyboard use: focus rings show
    tick = cards.nth(1).locator(".tick")
    tick.focus()
    expect(tick).to_be_focused()
    assert tick.evaluate("t => getComputedStyle(t).outlineStyle") == "solid"
    page.keyboard.press(" ")
    expect(cards.nth(1)).to_have_class(re.compile("selected"))
    expect(tick).to_have_attribute("aria-checked", "true")
    cards.nth(3).locator(".tick").focus()
    page.keyboard.press("Shift+Enter")  # a range from the last one
    expect(page.locator("#grid .card.selected")).to_have_count(3)
    page.keyboard.press("Enter")  # toggles the focused one off; the link does not open
    expect(page.locator("#grid .card.selected")).to_have_count(2)
    assert page.url.endswith("/library")
    shot(page, "library-keyboard-select")
