"""The duplicates page in Debian's chromium (Playwright) over `lookalike serve`.

A small library with copies in it (tests/support/webapp.build_duplicate_library):
the groups show largest first with the image to keep first, "keep this one" moves the
mark, hiding and removing an image work from the page. Screenshots at 1280 and 390
pixels wide go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.server import ServerProcess
from tests.support.webapp import build_duplicate_library

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_duplicate_library(tmp_path_factory.mktemp("browser-dups"))


@pytest.fixture(scope="module")
def server(library):
    server = ServerProcess(library[0])
    yield server
    server.stop()


def test_duplicates_page_keep_hide_and_remove(page, server, library):
    page.goto(f"{server.url}/duplicates")
    groups = page.locator(".dup-group")
    expect(groups).to_have_count(2, timeout=120_000)
    first = groups.nth(0)
    members = first.locator(".dup-member")
    expect(members).to_have_count(3)
    expect(members.nth(0)).to_have_class("dup-member keep")
    expect(members.nth(0).locator(".chip")).to_have_text("keep")
    expect(page.locator("#status")).to_contain_text("2 groups of copies, 5 images")
    page.screenshot(path=str(ARTIFACTS / "duplicates-1280.png"), full_page=True)

    kept_id, old_id = (
        members.nth(1).get_attribute("data-id"),
        members.nth(0).get_attribute("data-id"),
    )
    members.nth(1).get_by_role("button", name="Keep this one").click()
    # The group comes back from the server built around the image kept: it first, with
    # the "keep" chip, and every other member's chip says how it relates to it.
    expect(members.nth(0)).to_have_attribute("data-id", kept_id)
    expect(members.nth(0)).to_have_class("dup-member keep")
    expect(members.nth(0).locator(".chip")).to_have_text("keep")
    expect(first.locator(".dup-member.keep")).to_have_count(1)
    expect(first.locator(".chip", has_text="keep")).to_have_count(1)
    expect(first.locator(f'.dup-member[data-id="{old_id}"] .chip')).not_to_have_text("keep")
    second = groups.nth(1).locator(".dup-member")
    hidden_id = second.nth(1).get_attribute("data-id")
    second.nth(1).get_by_role("button", name="Hide").click()
    expect(second.nth(1)).to_have_class("dup-member gone")

    page.reload()  # the marks are stored: the kept copy first, the hidden one gone
    expect(page.locator(".dup-group")).to_have_count(1, timeout=60_000)
    kept = page.locator(".dup-group").nth(0).locator(".dup-member").nth(0)
    expect(kept.locator(".chip")).to_have_text("keep")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".dup-member").nth(2).get_by_role("button", name="Remove").click()
    expect(page.locator(".dup-member").nth(2)).to_have_class("dup-member gone")
    assert all(p.exists() for p in library[1].values())  # removed from the library only

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator(".dup-group")).to_have_count(1, timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "duplicates-390.png"), full_page=True)

    # The hidden image's page says so, and shows it again.
    page.goto(f"{server.url}/images/{hidden_id}")
    expect(page.locator("#hidden-note")).to_be_visible()
    page.get_by_role("button", name="Show it again").click()
    expect(page.locator("#hidden-note")).to_be_hidden()
    page.goto(f"{server.url}/duplicates")
    expect(page.locator(".dup-group")).to_have_count(2, timeout=60_000)
