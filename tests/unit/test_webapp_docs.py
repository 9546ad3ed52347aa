"""docs/api.md documents every API route and every setting (a test fails otherwise)."""

from __future__ import annotations

import re

import pytest

from lookalike.webapp.settings import SETTINGS
from tests.support.data import REPO
from tests.support.webapp import build_library, make_app

DOC = (REPO / "docs" / "api.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_every_setting_is_documented(name):
    assert f"`{name}`" in DOC


def test_every_api_route_is_documented(tmp_path_factory):
    app = make_app(build_library(tmp_path_factory.mktemp("weblib")))
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "<id>", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            last = path.rsplit("/", 1)[1]
            # The three image-bytes routes are documented together on one line.
            together = last in ("thumbnail", "preview", "file") and f"`/{last}`" in DOC
            if f"{method} {path}" not in DOC and not together:
                missing.append(f"{method} {path}")
    assert missing == []
