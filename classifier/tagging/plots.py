"""The validation report's charts as inline SVG, drawn by hand: bars, lines, a heatmap.

matplotlib drew them before; with its dependencies it was 72 MB, a tenth of the default
install, for four small charts. An SVG is text, scales with the page and uses the
browser's fonts; ``data_uri`` embeds one in an ``<img>`` like the PNGs were.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

# matplotlib's default colour cycle (tab10), so the heads keep their colours.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
FONT = "font-family='system-ui,sans-serif'"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


@dataclass
class Chart:
    """A plot area inside margins, with data ranges mapped to pixels (x optionally log)."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    margin: tuple[int, int, int, int] = (20, 20, 50, 60)  # top, right, bottom, left
    log_x: bool = False
    parts: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        f = math.log(value / lo) / math.log(hi / lo) if self.log_x else (value - lo) / (hi - lo)
        return self.margin[3] + f * (self.width - self.margin[1] - self.margin[3])

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        f = (min(max(value, lo), hi) - lo) / (hi - lo)  # clipped to the range, as ylim does
        return self.height - self.margin[2] - f * (self.height - self.margin[0] - self.margin[2])

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: int = 11,
        anchor: str = "middle",
        rotate: float = 0,
        colour: str = "#222",
    ) -> None:
        turn = f" transform='rotate({rotate:g} {x:.1f} {y:.1f})'" if rotate else ""
        self.add(
            f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"fill='{colour}'{turn}>{escape(s)}</text>"
        )

    def line(
        self,
        points: Sequence[tuple[float, float]],
        colour: str,
        width: float = 1.5,
        dashed: bool = False,
        markers: bool = False,
    ) -> None:
        xy = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in points)
        dash = " stroke-dasharray='4 3'" if dashed else ""
        self.add(
            f"<polyline points='{xy}' fill='none' stroke='{colour}' stroke-width='{width}'{dash}/>"
        )
        if markers:
            for a, b in points:
                self.add(
                    f"<circle cx='{self.x(a):.1f}' cy='{self.y(b):.1f}' r='3.5' fill='{colour}'/>"
                )

    def axes(
        self,
        x_ticks: Sequence[tuple[float, str]],
        y_ticks: Sequence[float],
        x_label: str = "",
        y_label: str = "",
        grid: str = "y",
    ) -> None:
        """The frame, tick labels, optional grid lines and axis labels."""
        left, top = self.margin[3], self.margin[0]
        right, bottom = self.width - self.margin[1], self.height - self.margin[2]
        for value in y_ticks:
            y = self.y(value)
            if "y" in grid:
                self.add(
                    f"<line x1='{left}' y1='{y:.1f}' x2='{right}' y2='{y:.1f}' stroke='#ddd'/>"
                )
            self.text(left - 6, y + 4, f"{value:g}", size=10, anchor="end")
        for value, label in x_ticks:
            x = self.x(value)
            if "x" in grid:
                self.add(
                    f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='#ddd'/>"
                )
            self.text(x, bottom + 16, label, size=10)
        self.add(
            f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' "
            "fill='none' stroke='#444'/>"
        )
        if x_label:
            self.text((left + right) / 2, self.height - 8, x_label)
        if y_label:
            self.text(14, (top + bottom) / 2, y_label, rotate=-90)

    def legend(self, names: Sequence[str], x: float, y: float) -> None:
        """Colour keys from (x, y) down, in a framed box (placed right of the plot area,
        in the room :func:`legend_width` asked for, it covers no bar or line)."""
        self.add(
            f"<rect x='{x - 4:.1f}' y='{y - 12:.1f}' width='{legend_width(names) - 8:.1f}' "
            f"height='{14 * len(names) + 4}' fill='white' fill-opacity='0.85' stroke='#ccc'/>"
        )
        for i, name in enumerate(names):
            colour = COLOURS[i % len(COLOURS)]
            self.add(
                f"<rect x='{x:.1f}' y='{y + 14 * i - 8:.1f}' width='10' height='10' "
                f"fill='{colour}'/>"
            )
            self.text(x + 14, y + 14 * i + 1, name, size=10, anchor="start")

    def svg(self) -> str:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' "
            f"height='{self.height}' viewBox='0 0 {self.width} {self.height}' {FONT}>"
            "<rect width='100%' height='100%' fill='white'/>" + "".join(self.parts) + "</svg>"
        )


def legend_width(names: Sequence[str]) -> int:
    """The width a legend of ``names`` takes (its box and a gap on either side)."""
    return 30 + max((len(n) for n in names), default=0) * 6


def _room_right(width: int, names: Sequence[str]) -> tuple[int, tuple[int, int, int, int]]:
    """(chart width, margins) for a plot ``width`` wide with its legend on its right."""
    top, right, bottom, left = Chart.margin
    room = legend_width(names)
    return left + width + room + right, (top, room + right, bottom, left)


def grouped_bars(
    categories: Sequence[str], series: Mapping[str, Sequence[float]], y_range: tuple[float, float]
) -> str:
    """One group of bars per category, one bar per series, the legend right of them."""
    size, margin = _room_right(720, list(series))
    chart = Chart(size, 320, (0, len(categories)), y_range, margin)
    width = 0.8 / max(len(series), 1)  # of a bar, in categories
    for i, values in enumerate(series.values()):
        for c, value in enumerate(values):
            x0, x1 = chart.x(c + 0.1 + i * width), chart.x(c + 0.1 + (i + 1) * width)
            top, base = chart.y(value), chart.y(y_range[0])
            chart.add(
                f"<rect x='{x0:.1f}' y='{top:.1f}' width='{x1 - x0:.1f}' "
                f"height='{base - top:.1f}' fill='{COLOURS[i % len(COLOURS)]}'/>"
            )
    steps = 5
    ticks = [y_range[0] + (y_range[1] - y_range[0]) * k / steps for k in range(steps + 1)]
    chart.axes([(c + 0.5, name) for c, name in enumerate(categories)], ticks)
    chart.legend(list(series), chart.x(len(categories)) + 16, chart.y(y_range[1]) + 12)
    return chart.svg()


def lines(
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_ticks: Sequence[float],
    x_label: str,
    y_label: str,
) -> str:
    """Lines with markers over a log x axis ticked at ``x_ticks``; y from the data; the
    legend right of the plot."""
    ys = [y for points in series.values() for _, y in points] or [0.0, 1.0]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.1 or 0.05
    xs = list(x_ticks) or [1.0, 10.0]
    x_range = (min(xs) / 1.2, max(xs) * 1.2)
    width, margin = _room_right(520, list(series))
    chart = Chart(width, 350, x_range, (lo - pad, hi + pad), margin, log_x=True)
    for i, points in enumerate(series.values()):
        if points:
            chart.line(points, COLOURS[i % len(COLOURS)], markers=True)
    y_ticks = [lo + (hi - lo) * k / 4 for k in range(5)] if hi > lo else [lo]
    chart.axes(
        [(x, f"{x:g}") for x in xs], [round(t, 3) for t in y_ticks], x_label, y_label, grid="xy"
    )
    chart.legend(list(series), chart.x(x_range[1]) + 16, chart.y(hi + pad) + 12)
    return chart.svg()


def heatmap(
    share: Sequence[Sequence[float]],
    counts: Sequence[Sequence[int]],
    names: Sequence[str],
    colour_label: str,
) -> str:
    """A confusion matrix: rows true, columns predicted, shaded by ``share`` (0..1), the
    counts written in the cells when there are at most 15 classes."""
    n = len(names)
    cell = max(6, min(32, 560 // max(n, 1)))
    size = 10 if n <= 30 else 7
    label_room = 8 + max((len(s) for s in names), default=1) * size * 0.6
    margin = (10, 90, int(label_room) + 30, int(label_room) + 30)
    side = cell * n
    chart = Chart(
        margin[3] + side + margin[1], margin[0] + side + margin[2], (0, n), (n, 0), margin
    )
    left, top = margin[3], margin[0]
    for i in range(n):
        for j in range(n):
            chart.add(
                f"<rect x='{left + j * cell}' y='{top + i * cell}' width='{cell}' "
                f"height='{cell}' fill='{_blue(share[i][j])}'/>"
            )
            if n <= 15 and counts[i][j]:
                ink = "white" if share[i][j] > 0.6 else "#222"
                chart.text(
                    left + (j + 0.5) * cell,
                    top + (i + 0.5) * cell + 4,
                    str(counts[i][j]),
                    size=9,
                    colour=ink,
                )
    for k, name in enumerate(names):
        chart.text(left - 4, top + (k + 0.5) * cell + 3, name, size=size, anchor="end")
        x = left + (k + 0.5) * cell
        chart.text(x + 3, top + side + 6, name, size=size, anchor="end", rotate=-90)
    chart.add(
        f"<rect x='{left}' y='{top}' width='{side}' height='{side}' fill='none' stroke='#444'/>"
    )
    chart.text(left + side / 2, chart.height - 6, "predicted")
    chart.text(12, top + side / 2, "true", rotate=-90)
    bar_x = left + side + 20
    for k in range(50):  # the colour bar, 1 at the top
        chart.add(
            f"<rect x='{bar_x}' y='{top + side * k / 50:.1f}' width='12' "
            f"height='{side / 50 + 0.5:.1f}' fill='{_blue(1 - k / 50)}'/>"
        )
    chart.text(bar_x + 16, top + 8, "1", size=9, anchor="start")
    chart.text(bar_x + 16, top + side, "0", size=9, anchor="start")
    chart.text(bar_x + 40, top + side / 2, colour_label, size=10, rotate=-90)
    return chart.svg()


def reliability(points: Sequence[tuple[float, float, int]], title: str) -> str:
    """Share right against confidence, over the diagonal of honest confidence; each
    point annotated with its count."""
    chart = Chart(400, 320, (0, 1), (0, 1), margin=(30, 20, 45, 55))
    chart.line([(0, 0), (1, 1)], "#999", width=1, dashed=True)
    chart.line([(x, y) for x, y, _ in points], COLOURS[0], markers=True)
    for x, y, count in points:
        chart.text(chart.x(x) + 5, chart.y(y) - 5, str(count), size=9, anchor="start")
    ticks = [k / 5 for k in range(6)]
    chart.axes([(t, f"{t:g}") for t in ticks], ticks, "confidence", "share right", grid="")
    chart.text(chart.width / 2, 18, title, size=11)
    return chart.svg()


def _blue(share: float) -> str:
    """matplotlib's "Blues" roughly: white at 0, dark blue at 1."""
    share = min(max(share, 0.0), 1.0)
    light, dark = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(a + (d - a) * share) for a, d in zip(light, dark, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"
