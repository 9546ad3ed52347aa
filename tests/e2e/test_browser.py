"""Real-browser tests: Debian's chromium driven by Playwright over `lookalike serve`.

The library is a dev slice (10 classes x 6 images) indexed by the real CLI with
--labels-from-folders, minus some labels: the first class loses all of them (a new
kind to discover), the second loses two (images to tag). Screenshots go to
test-artifacts/ for a person to look at.
Needs `apt-get install chromium` (never `playwright install`).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser

NEW_CLASS_INDEX = 0  # the class whose labels are all removed (Faces: a tight group)


def catalog(library: Path) -> sqlite3.Connection:
    return sqlite3.connect(library / "catalog.sqlite", timeout=30)


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    photos = copy_slice(base / "photos", classes=10, per_class=6)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders")
    classes = sorted({p.parent.name for p in photos})
    conn = catalog(lib)
    with conn:
        new_class = classes[NEW_CLASS_INDEX]
        conn.execute("DELETE FROM labels WHERE label = ?", (new_class,))
        untagged = conn.execute(
            "SELECT image_id FROM labels WHERE label = ? ORDER BY image_id DESC LIMIT 2",
            (classes[1],),
        ).fetchall()
        conn.executemany("DELETE FROM labels WHERE image_id = ?", untagged)
    conn.close()
    if has_module("lookalike.commands.tag"):
        run_cli("tag", "--library", str(lib))
    conn = catalog(lib)
    marks = ",".join("?" * len(untagged))
    found = conn.execute(
        f"SELECT COUNT(*) FROM tags WHERE label IS NOT NULL AND image_id IN ({marks})",
        [i for (i,) in untagged],
    ).fetchone()[0]
    if not found:  # no tagger in this version (or it abstained): a tag as it would write
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO tags (image_id, label, confidence, head, at) "
                "VALUES (?, ?, 0.9, 'knn', ?)",
                [(i, classes[1], time.time()) for (i,) in untagged],
            )
    conn.close()
    return lib


def second_class_tag(library: Path) -> tuple[int, str]:
    """A predicted tag of one of the second class's unlabelled images (not the new class's)."""
    second = sorted(p.name for p in (library.parent / "photos").iterdir())[1]
    conn = catalog(library)
    row = conn.execute(
        "SELECT t.image_id, t.label FROM tags t JOIN images i ON i.id = t.image_id "
        "WHERE t.label IS NOT NULL AND i.path LIKE ? AND NOT EXISTS "
        "(SELECT 1 FROM labels l WHERE l.image_id = t.image_id) ORDER BY t.confidence DESC",
        (f"%/{second}/%",),
    ).fetchone()
    conn.close()
    return row


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_upload_a_query_and_see_results(page, server, library, tmp_path):
    conn = catalog(library)
    path, label = conn.execute(
        "SELECT i.path, l.label FROM images i JOIN labels l ON l.image_id = i.id "
        "ORDER BY i.id LIMIT 1 OFFSET 3"
    ).fetchone()
    conn.close()
    query = tmp_path / "my query.jpg"
    shutil.copy(path, query)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(query))
    page.wait_for_selector("#results .card")
    cards = page.locator("#results .card")
    assert cards.count() == 24
    first = cards.first
    assert first.get_attribute("title") == path
    assert first.locator(".score").inner_text() == "1.000"
    assert label in first.inner_text()
    assert page.locator("#results .chip.match").count() == 0  # fast mode does not check
    for i in range(6):  # the first row of thumbnails has loaded
        expect(cards.nth(i).locator("img")).to_have_js_property("complete", True)
        assert cards.nth(i).locator("img").evaluate("i => i.naturalWidth") > 0
    shot(page, "search")

    # "Edited copies first": the same picture is marked as a copy, look-alikes are not.
    page.check("#robust")
    expect(cards.first.locator(".chip.match")).to_have_text("copy")
    expect(page.locator("#status")).to_contain_text("1 copy and 23 look-alikes")
    assert page.locator("#results .chip.match").count() < 24
    shot(page, "search-robust")
    page.uncheck("#robust")
    expect(page.locator("#results .chip.match")).to_have_count(0)

    # Draw a box over the top-left quarter: the search runs again on the region.
    box = page.locator("#query-img").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(page.locator("#status")).to_contain_text("region")
    assert page.locator("#box").is_visible()
    assert page.locator("#clear-box").is_visible()
    shot(page, "search-box")


def test_open_an_image_and_accept_its_tag(page, server, library):
    image_id, tag = second_class_tag(library)
    page.goto(server.url + "/library")
    page.click("#filters [data-filter=tagged]")
    page.wait_for_selector(f"#grid .card[data-id='{image_id}']")
    shot(page, "library-tagged")
    page.click(f"#grid .card[data-id='{image_id}']")
    page.wait_for_url(f"**/images/{image_id}")
    accept = page.locator("#accept-tag")
    accept.wait_for(state="visible")
    assert tag in accept.inner_text()
    page.wait_for_selector("#similar .card")
    shot(page, "image-before")
    accept.click()
    expect(page.locator("#label")).to_contain_text(tag)
    assert page.locator("#remove-label").is_visible()
    shot(page, "image-accepted")
    conn = catalog(library)
    row = conn.execute(
        "SELECT label, origin FROM labels WHERE image_id = ?", (image_id,)
    ).fetchone()
    conn.close()
    assert row == (tag, "manual")


def test_browse_unlabelled_and_fix_a_label(page, server, library):
    page.goto(server.url + "/library")
    page.click("#filters [data-filter=unlabelled]")
    page.wait_for_selector("#grid .card")
    shot(page, "library-unlabelled")
    # One of the second class's images (the first class's stay unlabelled for the
    # cluster test).
    second = sorted(p.name for p in (library.parent / "photos").iterdir())[1]
    card = page.locator(f"#grid .card[title*='/{second}/']").last
    image_id = card.get_attribute("data-id")
    card.click()
    page.wait_for_url(f"**/images/{image_id}")
    page.fill("#fix-label", "my new class")
    page.click("#fix-form button[type=submit]")
    expect(page.locator("#label")).to_contain_text("my new class")
    conn = catalog(library)
    row = conn.execute("SELECT label FROM labels WHERE image_id = ?", (image_id,)).fetchone()
    conn.close()
    assert row == ("my new class",)


@pytest.mark.skipif(
    not has_module("lookalike.classifier.clustering.review"),
    reason="no cluster review in this version",
)
def test_accept_a_cluster_as_a_class(page, server, library):
    page.goto(server.url + "/clusters")
    expect(page.locator("#recluster")).to_be_enabled()
    posted = lambda r: r.url.endswith("/api/clusters") and r.request.method == "POST"  # noqa: E731
    with page.expect_response(posted, timeout=60_000) as done:
        page.click("#recluster")
    assert done.value.ok
    card = page.locator(".cluster").first  # new categories come first
    card.wait_for(state="visible", timeout=60_000)
    expect(card.locator(".reps img").first).to_have_js_property("complete", True)
    shot(page, "clusters")
    members = int(card.locator("header .muted").first.inner_text().split()[0])
    assert members >= 5
    card.locator("input.accept-name").fill("discovered")
    card.locator("button.accept").click()
    expect(page.locator(".cluster.reviewed").first).to_be_visible()
    shot(page, "clusters-accepted")
    conn = catalog(library)
    count = conn.execute(
        "SELECT COUNT(*) FROM labels WHERE label = 'discovered' AND origin = 'review'"
    ).fetchone()[0]
    conn.close()
    assert count == members


@pytest.mark.skipif(
    not has_module("lookalike.classifier.tagging.tagger"), reason="no tagger in this version"
)
def test_evaluation_page(page, server):
    if has_module(
        "lookalike.classifier.tagging.validation"
    ):  # a quick cross-validation (one head, 2 folds)
        response = page.request.post(
            server.url + "/api/evaluation",
            data=json.dumps({"folds": 2, "heads": ["knn"]}),
            headers={"X-Requested-With": "test", "Content-Type": "application/json"},
        )
        assert response.status == 202
    page.goto(server.url + "/evaluation")
    expect(page.locator("#tag-clusters")).to_be_checked()  # the default, as the CLI's
    page.uncheck("#tag-clusters")
    with page.expect_response(lambda r: r.url.endswith("/api/tag"), timeout=60_000) as done:
        page.click("#tag-now")
    assert done.value.ok
    assert json.loads(done.value.request.post_data)["clusters"] is False
    expect(page.locator("#tag-status")).to_contain_text("by the head alone")
    page.check("#tag-clusters")
    with page.expect_response(lambda r: r.url.endswith("/api/tag"), timeout=60_000) as done:
        page.click("#tag-now")
    assert done.value.ok and done.value.json()["clusters"] is True
    expect(page.locator("#tag-status")).to_contain_text("with the clusters")
    expect(page.locator("#tag-figures table")).to_contain_text("images tagged")
    expect(page.locator("#tag-figures table")).to_contain_text("proto + clusters")
    if has_module("lookalike.classifier.tagging.validation"):
        expect(page.locator("#figures table")).to_contain_text("accuracy", timeout=60_000)
        expect(page.locator("#report")).to_be_visible()
        page.wait_for_timeout(500)  # let the report's images paint
    shot(page, "evaluation")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "evaluation-390")
