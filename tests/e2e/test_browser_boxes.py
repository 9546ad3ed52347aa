"""Real-browser tests of boxes on the image page (Playwright, Debian's chromium, over
`lookalike serve`): draw a box with the pointer, label it, move and resize it, accept the
suggested main-object box, delete one with the Delete key, search with a box and see
results; at 390 px wide a finger (touch input) draws a box, and the scaled picture maps
back to the image's pixels. Screenshots
at 1280 and 390 px wide go to test-artifacts/."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser


def rows(library: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(library / "catalog.sqlite", timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def boxes(library: Path, image_id: int) -> list[tuple]:
    return rows(
        library,
        "SELECT id, x0, y0, x1, y1, label, origin FROM boxes WHERE image_id = ? ORDER BY id",
        image_id,
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser-boxes")
    copy_slice(base / "photos", classes=4, per_class=6)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders", "-q")
    return lib


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def open_page(browser, width: int, touch: bool = False):
    context = browser.new_context(viewport={"width": width, "height": 900}, has_touch=touch)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def shot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def image_ids(library: Path) -> list[int]:
    return [r[0] for r in rows(library, "SELECT id FROM images ORDER BY id")]


def size_of(library: Path, image_id: int) -> tuple[int, int]:
    return rows(library, "SELECT width, height FROM images WHERE id = ?", image_id)[0]


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for k in range(1, 6):
        f = k / 5
        page.mouse.move(start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)
    page.mouse.up()


def touch_drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger's drag, as the browser's touch input (pointer events of type touch)."""
    cdp = page.context.new_cdp_session(page)

    def send(kind: str, x: float | None = None, y: float | None = None) -> None:
        points = [] if x is None else [{"x": x, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    send("touchStart", *start)
    for k in range(1, 6):
        f = k / 5
        send("touchMove", start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)
    send("touchEnd")
    cdp.detach()


def stage_point(page, fx: float, fy: float) -> tuple[float, float]:
    r = page.locator("#box-stage").bounding_box()
    return r["x"] + r["width"] * fx, r["y"] + r["height"] * fy


def draw_and_label(page, label: str, a=(0.2, 0.25), b=(0.6, 0.7), by=drag) -> None:
    by(page, stage_point(page, *a), stage_point(page, *b))
    expect(page.locator("#box-form")).to_be_visible()
    page.fill("#box-label", label)
    page.click("#box-save")
    expect(page.locator(".bx.human", has_text=label)).to_have_count(1)


def near(box, expected, tolerance):
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


def test_draw_label_move_resize_accept_delete_and_search(browser, server, library):
    context, page, errors = open_page(browser, 1280)
    try:
        image_id = image_ids(library)[0]
        w, h = size_of(library, image_id)
        page.goto(f"{server.url}/images/{image_id}")
        # The main object is offered as a dashed, suggested box.
        expect(page.locator(".bx.suggested")).to_have_count(1)
        assert [b[6] for b in boxes(library, image_id)] == ["suggested"]
        draw_and_label(page, "Box thing")
        scale = w / page.locator("#box-stage").bounding_box()["width"]
        (made,) = [b for b in boxes(library, image_id) if b[6] == "human"]
        assert made[5] == "Box thing"
        assert near(made[1:5], (0.2 * w, 0.25 * h, 0.6 * w, 0.7 * h), 2 * scale + 1), made
        shot(page, "boxes-image-1280")
        # Move it by its body, then resize it by its south-east handle.
        drag(page, stage_point(page, 0.4, 0.5), stage_point(page, 0.5, 0.55))
        expect(page.locator("#toast")).to_have_text("Box moved")
        (moved,) = [b[1:5] for b in boxes(library, image_id) if b[0] == made[0]]
        assert near(moved, (0.3 * w, 0.3 * h, 0.7 * w, 0.75 * h), 2 * scale + 1), moved
        handle = page.locator(".bx.human .handle.se").bounding_box()
        corner = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        drag(page, corner, stage_point(page, 0.9, 0.95))
        expect(page.locator("#toast")).to_have_text("Box resized")
        (resized,) = [b[1:5] for b in boxes(library, image_id) if b[0] == made[0]]
        assert near(resized, (moved[0], moved[1], 0.9 * w, 0.95 * h), 2 * scale + 1), resized
        # Accept the suggestion with a label: it becomes human.
        page.locator("#box-list li", has_text="suggested").click()
        expect(page.locator("#box-save")).to_have_text("Accept")
        page.fill("#box-label", "Main thing")
        page.click("#box-save")
        expect(page.locator(".bx.suggested")).to_have_count(0)
        assert sorted(b[5:] for b in boxes(library, image_id)) == [
            ("Box thing", "human"),
            ("Main thing", "human"),
        ]
        # The Delete key deletes the selected box.
        page.locator("#box-list li", has_text="Main thing").click()
        page.keyboard.press("Delete")
        expect(page.locator(".bx")).to_have_count(1)
        assert [b[5] for b in boxes(library, image_id)] == ["Box thing"]
        # Search with the box: the search page runs the region search of this image.
        page.locator("#box-list li", has_text="Box thing").click()
        page.click("#box-search")
        page.wait_for_url(re.compile(r"/\?image=\d+&box=[\d%C,]+"))
        expect(page.locator("#results .card").first).to_be_visible()
        expect(page.locator("#status")).to_contain_text("of the region")
        expect(page.locator("#box")).to_be_visible()
        assert page.locator("#results .card").count() >= 10
        shot(page, "boxes-search-1280")
        # Back on the image page, the box is still there (reloaded from the server).
        page.go_back()
        expect(page.locator(".bx.human", has_text="Box thing")).to_have_count(1)
        # Narrowed to 390 px, the picture and its boxes follow (nothing wider than that).
        page.set_viewport_size({"width": 390, "height": 900})
        page.wait_for_function("() => document.getElementById('box-stage').offsetWidth <= 366")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        (kept,) = boxes(library, image_id)
        tag = page.locator(".bx.human").bounding_box()
        stage = page.locator("#box-stage").bounding_box()
        assert abs((tag["x"] - stage["x"]) / stage["width"] * w - kept[1]) <= 2 * w / stage["width"]
    finally:
        context.close()
    assert errors == [], errors


def test_at_390_px_a_finger_draws_a_box_in_the_images_pixels(browser, server, library):
    context, page, errors = open_page(browser, 390, touch=True)
    try:
        image_id = image_ids(library)[1]
        w, h = size_of(library, image_id)
        page.goto(f"{server.url}/images/{image_id}")
        expect(page.locator(".bx.suggested")).to_have_count(1)
        stage = page.locator("#box-stage").bounding_box()
        assert stage["width"] <= 390 and stage["x"] >= 0
        draw_and_label(page, "Narrow thing", (0.25, 0.25), (0.75, 0.75), by=touch_drag)
        (made,) = [b for b in boxes(library, image_id) if b[6] == "human"]
        scale = w / stage["width"]
        assert near(made[1:5], (0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h), 2 * scale + 1), made
        page.locator("#box-list li", has_text="Narrow thing").click()
        expect(page.locator("#box-search")).to_be_visible()
        shot(page, "boxes-image-390")
        page.click("#box-search")
        expect(page.locator("#results .card").first).to_be_visible()
        shot(page, "boxes-search-390")
    finally:
        context.close()
    assert errors == [], errors


def test_double_enter_saves_one_box_and_delete_offers_undo(browser, server, library):
    """A double Enter on a new box saves it once (the page shows what the server holds);
    a box list line takes the keyboard (Enter selects); Delete deletes at once and the
    message's Undo brings the box back."""
    context, page, errors = open_page(browser, 1280)
    try:
        image_id = image_ids(library)[2]
        page.goto(f"{server.url}/images/{image_id}")
        expect(page.locator("#box-list li").first).to_be_visible()
        posts = []
        page.on(
            "request",
            lambda r: (
                posts.append(r.url)
                if r.method == "POST" and r.url.endswith(f"/images/{image_id}/boxes")
                else None
            ),
        )
        drag(page, stage_point(page, 0.1, 0.1), stage_point(page, 0.5, 0.5))
        page.fill("#box-label", "Once box")
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")
        expect(page.locator("#toast")).to_have_text("Box labelled “Once box”")
        expect(page.locator("#box-save")).to_be_enabled()
        assert len(posts) == 1, posts
        human = [b for b in boxes(library, image_id) if b[6] == "human"]
        assert [b[5] for b in human] == ["Once box"]
        expect(page.locator(".bx.human")).to_have_count(len(human))
        expect(page.locator(".box-hint")).to_contain_text("Undo")
        # The keyboard selects a line of the list; Delete deletes it, Undo brings it back.
        page.keyboard.press("Escape")
        line = page.locator("#box-list li", has_text="Once box")
        line.focus()
        page.keyboard.press("Enter")
        expect(line).to_have_class("on")
        assert line.evaluate("li => getComputedStyle(li).outlineStyle") == "solid"
        page.keyboard.press("Delete")
        expect(page.locator("#toast")).to_contain_text("Box “Once box” deleted")
        expect(page.locator(".bx.human")).to_have_count(0)
        assert not [b for b in boxes(library, image_id) if b[6] == "human"]
        page.locator("#toast .toast-action").click()
        expect(page.locator(".bx.human", has_text="Once box")).to_have_count(1)
        (back,) = [b for b in boxes(library, image_id) if b[6] == "human"]
        assert back[5] == "Once box" and near(back[1:5], human[0][1:5], 0)
        shot(page, "boxes-undo-1280")
    finally:
        context.close()
    assert errors == [], errors
