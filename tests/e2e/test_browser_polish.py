"""Real-browser tests of the annotation workflow's rough edges (Playwright, Debian's
chromium, over `lookalike serve`): a 100-character label on every page at 1280 and
390 px, the evaluation page's plain summary, its one run per double click and its
warning about classes with few labels, the report's legends outside the plots, what an
"unknown 65%" chip means, an unknown library filter, and the image page's label form.

A dev slice of 5 classes x 6 images labelled from folders: the first class loses its
labels (unknown after tagging), the second keeps 3 (fewer than the 5 folds), and two
images get a 100-character label. Screenshots go to test-artifacts/ (``polish-*``).
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser

LONG = "Ourspandagéantdesmontagnes" * 3 + "Ourspandagéantdesmontag"  # 101: cut below
LONG = LONG[:100]
WIDTHS = (1280, 390)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser-polish")
    photos = copy_slice(base / "photos", classes=5, per_class=6)
    lib = base / "lib"
    run_cli("index", str(base / "photos"), "--library", str(lib), "--labels-from-folders", "-q")
    first, second, third = sorted({p.parent.name for p in photos})[:3]
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM labels WHERE label = ?", (first,))
        few = conn.execute(
            "SELECT image_id FROM labels WHERE label = ? ORDER BY image_id LIMIT 3", (second,)
        ).fetchall()
        conn.executemany("DELETE FROM labels WHERE image_id = ?", few)
        two = conn.execute(
            "SELECT image_id FROM labels WHERE label = ? ORDER BY image_id LIMIT 2", (third,)
        ).fetchall()
        conn.executemany(
            "UPDATE labels SET label = ? WHERE image_id = ?", [(LONG, i) for (i,) in two]
        )
    run_cli("tag", "--library", str(lib))
    return lib


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def one(library: Path, sql: str, *args):
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        return conn.execute(sql, args).fetchone()[0]


def shot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    path = f"polish-{name}-{page.viewport_size['width']}.png"
    page.screenshot(path=str(ARTIFACTS / path), full_page=True)


def width_of(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_100_character_label_fits_every_page(page, server, library):
    long_id = one(library, "SELECT image_id FROM labels WHERE label = ?", LONG)
    page.request.post(
        server.url + "/api/clusters",
        data=json.dumps({}),
        headers={"X-Requested-With": "test", "Content-Type": "application/json"},
        timeout=120_000,
    )
    pages = {
        "library": ("/library", "#grid .card"),
        "library-long": (f"/library?filter=labelled&label={LONG}", "#grid .card"),
        "clusters": ("/clusters", ".cluster"),
        "image": (f"/images/{long_id}", "#label .chip"),
    }
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844 if width == 390 else 800})
        for name, (path, ready) in pages.items():
            page.goto(server.url + path)
            expect(page.locator(ready).first).to_be_visible()
            if name == "library":
                expect(page.locator("#label-select option")).not_to_have_count(1)
            assert width_of(page) <= width, f"{name} is {width_of(page)} px wide at {width} px"
            shot(page, name)
        page.goto(server.url + "/library")
        expect(page.locator("#label-select option")).not_to_have_count(1)
        assert page.locator("#label-select").bounding_box()["width"] <= 16 * 16 + 1
    # The full label stays readable where it is cut short.
    page.goto(server.url + f"/images/{long_id}")
    expect(page.locator("#label .chip")).to_have_text(LONG)
    expect(page.locator("#label .chip")).to_have_css("text-overflow", "ellipsis")


def test_unknown_chips_say_what_their_percentage_is(page, server, library):
    page.goto(server.url + "/library?filter=unknown")
    chip = page.locator("#grid .chip.unknown").first
    expect(chip).to_have_attribute("title", re.compile(r"none of your labels; \d+% is how likely"))
    page.locator("#grid .card").first.click()
    expect(page.locator("#tag .chip.unknown")).to_have_attribute(
        "title", re.compile("none of your labels")
    )
    expect(page.locator("#tag")).to_contain_text("likely of none of your labels")


def test_image_page_label_form_and_unknown_filter(page, server, library):
    page.goto(server.url + "/library?filter=bogus")
    expect(page.locator("#filter-note")).to_have_text(
        "The filter “bogus” is not one of this page’s: showing All."
    )
    expect(page.locator("#filters [data-filter=all]")).to_have_class(re.compile("on"))
    shot(page, "filter-note")
    page.locator("#filters [data-filter=unlabelled]").click()
    expect(page.locator("#filter-note")).to_be_hidden()
    image_id = page.locator("#grid .card").first.get_attribute("data-id")
    page.goto(server.url + f"/images/{image_id}")
    expect(page.locator("#label")).to_contain_text("none yet")
    page.click("#fix-form button[type=submit]")
    expect(page.locator("#toast")).to_have_text("type a label first")
    page.fill("#fix-label", "ｗｉｄｅ ｃａｔ")  # full-width letters: stored as ASCII
    page.click("#fix-form button[type=submit]")
    expect(page.locator("#toast")).to_have_text("Labelled “wide cat”")
    expect(page.locator("#label .chip")).to_have_text("wide cat")


def legend_and_frame(svg: str) -> tuple[float, float]:
    """(the legend box's left edge, the plot frame's right edge) of a report chart."""
    legend = re.search(
        r"<rect x='([\d.]+)' y='[\d.]+' width='[\d.]+' height='\d+' fill='white' fill-opacity", svg
    )
    frame = re.search(
        r"<rect x='(\d+)' y='\d+' width='(\d+)' height='\d+' fill='none' stroke='#444'/>", svg
    )
    return float(legend.group(1)), float(frame.group(1)) + float(frame.group(2))


def test_evaluation_summary_one_run_and_legends_outside(page, server, library):
    page.goto(server.url + "/evaluation")
    expect(page.locator("#tag-status")).to_contain_text("Tagged")
    posts, errors = [], []
    page.on(
        "request",
        lambda r: (
            posts.append(r.url)
            if r.method == "POST" and r.url.endswith("/api/evaluation")
            else None
        ),
    )
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.locator("#run-eval").dblclick()  # one evaluation, no "already running" error
    expect(page.locator("#figures table")).to_contain_text("accuracy", timeout=180_000)
    assert len(posts) == 1, posts
    expect(page.locator("#toast.error")).to_have_count(0)
    # One plain statement, from the figures the page has.
    summary = page.locator("#summary")
    expect(summary).to_contain_text(
        re.compile(r"In the last tagging run’s own test, (about \d+ in 100|all|no) images")
    )
    expect(summary).to_contain_text(re.compile(r"left \d+ unknown \((about \d+ in 100|all|no)\)"))
    # Classes with fewer labels than folds are named.
    expect(page.locator("#few-labels")).to_contain_text("fewer labels than the 5 folds")
    # The jargon says what it is; which table is which; what "best" means.
    expect(page.locator("#figures td[title]", has_text="macro-F1")).to_have_attribute(
        "title", re.compile("averaged class by class")
    )
    expect(page.locator("#figures caption")).to_contain_text("Cross-validation")
    expect(page.locator("#tag-figures caption")).to_contain_text("The last tagging run")
    expect(page.locator("#figures th", has_text="(best)")).to_have_attribute(
        "title", re.compile("highest accuracy")
    )
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844 if width == 390 else 800})
        assert width_of(page) <= width
        shot(page, "evaluation")
    # The report's legends sit right of the plot area, over no bar or line.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(server.url + "/evaluation/report")
    sources = page.locator("img.plot").evaluate_all("imgs => imgs.map(i => i.src)")
    svgs = [base64.b64decode(s.split(",", 1)[1]).decode() for s in sources if "svg" in s]
    legends = [legend_and_frame(svg) for svg in svgs if "fill-opacity='0.85'" in svg]
    assert len(legends) >= 2
    for left, right in legends:
        assert left > right, (left, right)
    # The coverage table's long label wraps: every column is in view.
    coverage = page.locator("table", has_text="unknown nearest")
    fits = "t => [t.scrollWidth, t.clientWidth]"
    page.screenshot(path=str(ARTIFACTS / "polish-report-1280.png"), full_page=True)
    scroll, client = coverage.evaluate(fits)
    assert scroll <= client + 1, (scroll, client)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "polish-report-390.png"), full_page=True)
    assert width_of(page) <= 390  # a wide table scrolls in its own box
