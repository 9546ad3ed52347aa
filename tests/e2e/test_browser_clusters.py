"""The clusters page in a real browser (Debian's chromium, Playwright, `lookalike serve`).

A dev slice of 6 classes x 12 images, labelled from folders, then: the first class loses
every label (a new category), the second half of its labels (more of a label). The page
must show every member (paged), let some be left out, make Merge the primary action for
the group near its label and Accept (with a name the user types) for the new one.
Screenshots at 1280 and 390 px go to test-artifacts/.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser-clusters")
    photos = copy_slice(base / "photos", classes=6, per_class=12)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders", "-q")
    first, second = sorted({p.parent.name for p in photos})[:2]
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM labels WHERE label = ?", (first,))
        half = conn.execute(
            "SELECT image_id FROM labels WHERE label = ? ORDER BY image_id LIMIT 6", (second,)
        ).fetchall()
        conn.executemany("DELETE FROM labels WHERE image_id = ?", half)
    return lib


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def labelled(library: Path, label: str) -> int:
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        query = "SELECT COUNT(*) FROM labels WHERE label = ? AND origin = 'review'"
        return conn.execute(query, (label,)).fetchone()[0]


def test_review_every_member_leave_some_out_and_follow_the_evidence(page, server, library):
    page.goto(server.url + "/clusters")
    expect(page.locator("#status")).to_contain_text("Not clustered yet")  # GET clustered nothing
    for bad in ("1", "2.5"):  # refused on the page, in its own words, never truncated
        page.fill("#min-size", bad)
        page.click("#recluster")
        expect(page.locator("#status")).to_have_text(
            "Smallest new category must be a whole number of at least 2."
        )
    page.fill("#min-size", "")  # empty: the default, shown in the box
    page.click("#recluster")
    expect(page.locator("#min-size")).to_have_value("5")
    expect(page.locator("#status")).to_contain_text("(5+ images)", timeout=120_000)
    new = page.locator(".cluster[data-kind=new]").first
    new.wait_for(state="visible", timeout=120_000)
    assert page.locator(".cluster").first.get_attribute("data-kind") == "new"  # new first
    # A new category: Accept is primary, its name empty (the guess only a suggestion).
    accept = new.locator("button.accept")
    assert "secondary" not in (accept.get_attribute("class") or "")
    expect(new.locator("input.accept-name")).to_have_value("")
    expect(accept).to_be_disabled()
    # More of a label: Merge into it is the primary action.
    near = page.locator(".cluster[data-kind=label]").first
    merge = near.locator("button.merge")
    expect(merge).to_be_visible()
    assert "secondary" not in (merge.get_attribute("class") or "")
    assert "secondary" in (near.locator("button.accept").get_attribute("class") or "")

    size = int(new.locator("header .muted").first.inner_text().split()[0])
    new.locator("button.show-members").click()
    tiles = new.locator(".members .member")
    expect(tiles).to_have_count(min(size, 24))
    expect(tiles.first.locator("img")).to_have_js_property("complete", True)
    tiles.nth(0).click()
    tiles.nth(1).click()
    expect(new.locator(".left-out-count")).to_have_text("2 left out")
    page.screenshot(path=str(ARTIFACTS / "clusters-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "clusters-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    if new.locator("button.suggestion").count():
        new.locator("button.suggestion").click()  # fills the name: a suggestion, on request
        assert new.locator("input.accept-name").input_value()
    new.locator("input.accept-name").fill("discovered")
    accept.click()
    expect(new).to_have_class("cluster kind-new reviewed")
    assert labelled(library, "discovered") == size - 2
    merge.click()
    expect(near).to_have_class("cluster kind-label reviewed")
    page.screenshot(path=str(ARTIFACTS / "clusters-reviewed.png"), full_page=True)
