"""Fixtures the browser tests share."""

from __future__ import annotations

import pytest

from tests.support.browser import launch


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Debian's, see tests/support/browser.py)."""
    yield from launch()


@pytest.fixture()
def page(browser):
    """A fresh 1280x900 context's page; the test fails if any page raised a script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == [], errors  # no script errors on any page
