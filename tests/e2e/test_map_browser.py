"""The library map in a real browser: 20,000 points drawn, a lasso selects and labels.

The library holds made-up vectors (40 synthetic classes of 500) under the default
model's description, so `lookalike serve` serves it as it would a real one; the map
needs no model. Screenshots go to test-artifacts/map-*.png.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lookalike.indexer.models.registry import load_embedder
from lookalike.indexer.store.library import Library
from tests.support.browser import ARTIFACTS
from tests.support.server import ServerProcess
from tests.support.vectors import clusters, write_vectors

pytestmark = pytest.mark.browser

POINTS = 20_000


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("map") / "lib"
    info = load_embedder("efficientnet-lite0").info
    x, y = clusters(40, POINTS // 40, dim=info.dim, spread=0.5, seed=0)
    with Library.create(root, info) as lib:
        ids = write_vectors(lib, x)
        first_of_class = [(ids[i], f"class{y[i]:02d}") for i in range(0, len(ids), POINTS // 40)]
        with lib.catalog.transaction() as conn:
            lib.catalog.set_labels(conn, first_of_class, "manual")
    return root


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library)
    yield server
    server.stop()


def open_map(browser, server, width: int, height: int, query: str = ""):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Thumbnails 404 here (the made-up images have no files): only script errors count.
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "404" not in m.text else None,
    )
    page.goto(f"{server.url}/map{query}")
    page.locator("#map-status").filter(has_text="images, coloured by").wait_for(timeout=240_000)
    return page, errors


def painted_pixels(page) -> int:
    return page.evaluate(
        """() => {
            const c = document.getElementById("map");
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;
            return n;
        }"""
    )


def test_the_map_draws_every_point_and_a_lasso_labels_a_selection(browser, server, library):
    page, errors = open_map(browser, server, 1280, 900, "?colour=label")
    assert page.evaluate("() => window.lookalikeMap.n") == POINTS
    assert painted_pixels(page) > 5_000  # points drawn, not an empty canvas
    assert page.locator("#legend li").count() == 41  # 40 labels and "no human label"
    page.evaluate(
        """() => document.addEventListener("lookalike:select",
            (e) => { window.selectedByEvent = e.detail.ids; })"""
    )
    box = page.locator("#map").bounding_box()
    page.click("#tool-lasso")
    x0, y0 = box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for dx, dy in ((0.4, 0), (0.4, 0.4), (0, 0.4), (0, 0)):
        page.mouse.move(x0 + dx * box["width"], y0 + dy * box["height"], steps=4)
    page.mouse.up()
    text = page.locator("#selection-text").inner_text()
    selected = page.evaluate("() => window.selectedByEvent")
    assert 0 < len(selected) < POINTS
    assert text == f"{len(selected)} images selected"
    page.screenshot(path=str(ARTIFACTS / "map-lasso-1280.png"), full_page=True)

    page.fill("#selection-name", "lassoed")
    page.click("#selection-label button")
    page.locator("#legend li", has_text="lassoed").wait_for(timeout=60_000)
    conn = sqlite3.connect(library / "catalog.sqlite")
    labelled = {r[0] for r in conn.execute("SELECT image_id FROM labels WHERE label = 'lassoed'")}
    conn.close()
    assert labelled == set(selected)
    assert errors == []
    page.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_the_map_page_fits_the_screen(browser, server, width, height):
    page, errors = open_map(browser, server, width, height)
    frame = page.locator("#map-frame").bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= width
    page.screenshot(path=str(ARTIFACTS / f"map-{width}.png"), full_page=True)
    assert errors == []
    page.close()


def test_a_pan_moves_the_cached_points_as_a_full_redraw_would(browser, server):
    """Panning copies the offscreen bitmap at an offset: the same pixels as drawing every
    point afresh at the new place, and no redraw of the points for a short pan."""
    page, errors = open_map(browser, server, 1280, 900)
    frame = """() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"""
    checksum = """() => {
        const c = document.getElementById("map");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let h = 0, n = 0;
        for (let k = 0; k < d.length; k++) { h = (h * 31 + d[k] * (k % 997 + 1)) >>> 0; }
        for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;
        return [h, n];
    }"""
    page.evaluate(frame)
    before = page.evaluate(checksum)
    renders = page.evaluate("() => window.lookalikeMap.renders")
    page.evaluate("() => { const s = window.lookalikeMap; s.tx += 37; s.ty -= 23; s.dirty = 1; }")
    page.evaluate(frame)
    panned = page.evaluate(checksum)
    assert page.evaluate("() => window.lookalikeMap.renders") == renders  # a copy, no redraw
    assert panned != before  # the points moved
    page.evaluate("() => { const s = window.lookalikeMap; s.version += 1; s.dirty = true; }")
    page.evaluate(frame)
    assert page.evaluate("() => window.lookalikeMap.renders") == renders + 1
    assert page.evaluate(checksum) == panned  # drawn afresh: the same pixels
    assert panned[1] > 5_000
    assert errors == []
    page.close()
