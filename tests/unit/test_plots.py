"""The report's hand-drawn SVG charts: well-formed, escaped, and drawn where the data says."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from lookalike.classifier.tagging import plots

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything not well-formed
    assert root.tag == SVG + "svg"
    return root


def test_bars_are_as_tall_as_their_values():
    svg = plots.grouped_bars(["a", "b"], {"one": [1.0, 0.75], "two <&>": [0.5, 0.2]}, (0.5, 1.0))
    root = _parse(svg)
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "two <&>" in texts  # escaped in the file, the same text once parsed
    chart = plots.Chart(800, 320, (0, 2), (0.5, 1.0))
    full = chart.y(0.5) - chart.y(1.0)
    heights = [
        float(r.get("height"))
        for r in root.iter(SVG + "rect")
        if r.get("fill") in plots.COLOURS[:2] and r.get("width") != "10"
    ]
    assert heights == [full, full / 2, 0.0, 0.0]  # below the range: clipped to nothing


def test_heatmap_lines_and_reliability_are_well_formed():
    data_uri = plots.data_uri(
        plots.heatmap([[1.0, 0.0], [0.25, 0.75]], [[4, 0], [1, 3]], ["cat", "dog"], "share")
    )
    assert data_uri.startswith("data:image/svg+xml;base64,")
    root = _parse(base64.b64decode(data_uri.split(",", 1)[1]).decode())
    assert {"4", "1", "3", "cat", "dog", "predicted", "true"} <= {
        t.text for t in root.iter(SVG + "text")
    }
    _parse(plots.lines({"knn": [(1, 0.5), (5, 0.9)], "svm": []}, [1, 5], "labels", "accuracy"))
    _parse(plots.lines({"knn": []}, [], "labels", "accuracy"))  # nothing to draw: still a chart
    _parse(plots.reliability([(0.5, 0.4, 3), (0.9, 0.95, 20)], "honest?"))
