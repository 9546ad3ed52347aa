"""The evaluation report escapes everything it embeds: a library path that is HTML, and
labels with HTML's special characters, in the page and in its SVG charts."""

from __future__ import annotations

import base64
import re
import shutil

from tests.support.cli import run_cli
from tests.support.data import dev_images

HOSTILE_DIR = "lib<img src=x onerror=alert(1)>"
LABELS = ["Tom & Jerry's", "A+B (x)", "plain"]


def test_report_escapes_the_library_path_and_labels(tmp_path):
    photos = tmp_path / "photos"
    for label, sources in zip(
        LABELS, [dev_images(3, 6)[i * 6 : i * 6 + 6] for i in range(3)], strict=True
    ):
        (photos / label).mkdir(parents=True)
        for src in sources:
            shutil.copy(src, photos / label / src.name)
    library = tmp_path / HOSTILE_DIR
    run_cli("index", str(photos), "--library", str(library), "--labels-from-folders")
    report = tmp_path / "report.html"
    run_cli(
        "evaluate", "--library", str(library), "--folds", "2", "--heads", "knn",
        "--report", str(report),
    )  # fmt: skip
    page = report.read_text()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Tom & Jerry" not in page and "Tom &amp; Jerry&#x27;s" in page
    svgs = [
        base64.b64decode(m).decode()
        for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", page)
    ]
    assert svgs
    for svg in svgs:
        assert "Tom & Jerry" not in svg and "<img" not in svg
    assert any("Tom &amp; Jerry" in svg for svg in svgs)
