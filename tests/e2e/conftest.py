"""Fixtures the browser tests share."""

from __future__ import annotations

import pytest

from tests.support.browser import launch


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Debian's, see tests/support/browser.py)."""
    yield from launch()
