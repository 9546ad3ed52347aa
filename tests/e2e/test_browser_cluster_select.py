"""The clusters page's members grid with the shared selection (issue 15), and the open
cluster in the URL (issue 16), in a real browser (Debian's chromium, `lookalike serve`).

A dev slice of 6 classes x 12 images labelled from folders; the first class loses its
labels (a new category of 12). Shift-click selects a range of members, the bar labels
them and Undo puts them back, except one relabelled by hand since; Ctrl-click and
"Leave out" leave members out of the decision (Undo takes them back); the accepted
class leaves them unlabelled. Screenshots at 1280 and 390 px go to test-artifacts/
(``cluster-select-*``).
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
    base = tmp_path_factory.mktemp("cluster-select")
    photos = copy_slice(base / "photos", classes=6, per_class=12)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders", "-q")
    first = sorted({p.parent.name for p in photos})[0]
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM labels WHERE label = ?", (first,))
    return lib


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def labels_of(library: Path, ids: list[int]) -> dict[int, str]:
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT image_id, label FROM labels WHERE image_id IN ({marks})", ids)
        return dict(rows.fetchall())


def shots(page, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(100)  # a layout pass after the resize
        page.screenshot(path=str(ARTIFACTS / f"cluster-select-{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} is {scroll} px wide at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_select_label_undo_leave_out_and_accept(page, browser, server, library):
    page.goto(server.url + "/clusters")
    page.click("#recluster")
    new = page.locator(".cluster[data-kind=new]").first
    new.wait_for(state="visible", timeout=120_000)
    cluster_id = new.get_attribute("data-id")
    size = int(new.locator("header .muted").first.inner_text().split()[0])
    new.locator("button.show-members").click()
    page.wait_for_url(f"**/clusters?cluster={cluster_id}")
    tiles = new.locator(".members .member")
    expect(tiles).to_have_count(min(size, 24))
    ids = [int(i) for i in tiles.evaluate_all("ts => ts.map(t => t.dataset.id)")]

    # Shift-click a range of five, label them, undo.
    tiles.nth(0).locator(".tick").click()
    tiles.nth(4).click(modifiers=["Shift"])
    bar = page.locator(".select-bar")
    expect(bar.locator(".sel-count")).to_have_text("5 images selected")
    shots(page, "selected")
    bar.locator(".sel-label").fill("oddity")
    bar.locator(".sel-apply").click()
    expect(new.locator(".member-label")).to_have_count(5)
    assert labels_of(library, ids[:5]) == dict.fromkeys(ids[:5], "oddity")
    assert not new.locator(".member.left-out").count()  # selecting left nobody out
    # A person relabels one of them since (as on its page): undo leaves it alone.
    status = page.evaluate(
        """id => fetch(`/api/images/${id}/label`, {method: "PUT",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({label: "by hand"})}).then(r => r.status)""",
        ids[0],
    )
    assert status == 200
    bar.locator(".sel-undo").click()
    expect(page.locator("#toast")).to_have_text(
        "Undone for 4 images; 1 was changed since and was left as it is"
    )
    expect(new.locator(".member-label")).to_have_count(1)
    assert labels_of(library, ids[:5]) == {ids[0]: "by hand"}

    # "All matching" takes every member of the cluster, not only the page.
    bar.locator(".sel-all").click()
    expect(bar.locator(".sel-count")).to_have_text(f"{size} images selected")
    bar.locator(".sel-clear").click()

    # Ctrl-click three, leave them out; undo; again; a plain click still toggles one.
    for i in (1, 2, 3):
        tiles.nth(i).click(modifiers=["Control"])
    bar.locator(".sel-extra").click()
    expect(new.locator(".left-out-count")).to_have_text("3 left out")
    expect(new.locator(".member.left-out")).to_have_count(3)
    bar.locator(".sel-undo").click()
    expect(new.locator(".left-out-count")).to_have_text("")
    for i in (1, 2, 3):
        tiles.nth(i).click(modifiers=["Control"])
    bar.locator(".sel-extra").click()
    expect(new.locator(".left-out-count")).to_have_text("3 left out")
    tiles.nth(5).click()  # nothing selected: a click leaves one out, as before
    expect(new.locator(".left-out-count")).to_have_text("4 left out")
    shots(page, "left-out")

    # The open cluster is in the URL: a reload and a new browser open it again.
    page.reload()
    again = page.locator(f".cluster[data-id='{cluster_id}']")
    expect(again.locator("button.show-members")).to_have_attribute("aria-expanded", "true")
    expect(again.locator(".members .member")).to_have_count(min(size, 24))
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        fresh = other.new_page()
        fresh.goto(page.url)
        shown = fresh.locator(f".cluster[data-id='{cluster_id}'] .members .member")
        expect(shown).to_have_count(min(size, 24))
    finally:
        other.close()

    # Leave out three again (the reload forgot the unsaved choice), then accept.
    tiles = again.locator(".members .member")
    for i in (1, 2, 3):
        tiles.nth(i).click(modifiers=["Control"])
    bar.locator(".sel-extra").click()
    expect(again.locator(".left-out-count")).to_have_text("3 left out")
    # Three members of one cluster: one cluster, counted once.
    expect(page.locator("#toast")).to_have_text("Left 3 images out of the cluster")
    expect(bar.locator(".sel-undo")).to_be_visible()
    again.locator("input.accept-name").fill("discovered")
    expect(again.locator(".decision-note")).to_contain_text("final")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/accept") else None)
    again.locator("button.accept").dblclick()  # one decision, one request
    expect(again).to_have_class("cluster kind-new reviewed")
    expect(page.locator("#toast")).to_have_text("Accepted as “discovered”")
    assert len(posts) == 1, posts
    # The Undo of the leave-out is stale once the cluster is decided: it is gone.
    expect(bar.locator(".sel-undo")).to_be_hidden()
    expect(again.locator("button.accept")).to_have_css("cursor", "not-allowed")  # looks disabled
    labelled = labels_of(library, ids)
    assert all(i not in labelled for i in ids[1:4])
    assert labelled[ids[0]] == "by hand"  # a person's label outlives the review
    assert all(labelled.get(i) == "discovered" for i in ids[4:])
