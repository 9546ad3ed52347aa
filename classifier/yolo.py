"""YOLO folders read back: ``classes.txt``, ``images.txt`` and ``labels/``, as written by
``lookalike labels export --format yolo`` (lookalike.classifier.exports).

Each image of ``images.txt`` has its label file at ``labels/<its path under the images'
common folder>.txt``; each row is ``class cx cy w h``, normalised to the image's size.
A row ``class 0.5 0.5 1 1`` (the whole image) is the image's label, any other a box,
turned into the pixels of the image as the library has it. Every bad row is named
(``labels/a/b.txt row 3: ...``): not five fields, a class not in ``classes.txt``,
numbers outside 0..1, no area, a box outside its image, a label file of no listed
image, an image the library does not have. Nothing is written here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from lookalike.classifier.boxes import BoxAnnotation
from lookalike.classifier.labels import BadLabelFile, RejectedRow, Row

# A row within this of 0.5 0.5 1 1 is the whole image (the files hold 6 decimals).
WHOLE = 1e-6

Rows = list[Row | RejectedRow | BoxAnnotation]


def is_yolo(path: str | Path) -> bool:
    return Path(path).is_dir()


def _lines(path: Path, folder: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError as e:
        raise BadLabelFile(folder, f"not a YOLO folder: it has no {path.name}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise BadLabelFile(folder, f"{path.name} cannot be read ({e})") from e


def read_yolo(folder: str | Path, size_of: Callable[[str], tuple[int, int] | None]) -> Rows:
    """The label and box rows of a YOLO folder; ``size_of(path)``: the library's size of
    an image (None: not in the library). ``line`` numbers the rows across the files.

    Raises:
        BadLabelFile: no classes.txt or images.txt, or one that cannot be read.
    """
    root = Path(folder)
    names = [n.strip() for n in _lines(root / "classes.txt", root)]
    images = [p.strip() for p in _lines(root / "images.txt", root) if p.strip()]
    common = Path(os.path.commonpath(images)) if images else root
    if len(images) == 1:
        common = common.parent
    by_file = {
        str(Path(os.path.relpath(p, common)).with_suffix(".txt")): os.path.normpath(p)
        for p in images
    }
    out: Rows = []
    files = sorted((root / "labels").rglob("*.txt")) if (root / "labels").is_dir() else []
    for file in files:
        rel = str(file.relative_to(root / "labels"))
        shown = f"labels/{rel}"
        path = by_file.get(rel)
        rows = file.read_text(encoding="utf-8-sig").splitlines()
        if path is None:
            reason = f"{shown}: no image of images.txt has this label file"
            out.append(RejectedRow(len(out) + 1, "", "", reason))
            continue
        size = size_of(path)
        for n, text in enumerate(rows, start=1):
            if not text.strip():
                continue
            where = f"{shown} row {n}"
            out.append(_row(len(out) + 1, where, text, path, size, names))
    return out


def _row(
    line: int, where: str, text: str, path: str, size: tuple[int, int] | None, names: list[str]
) -> Row | RejectedRow | BoxAnnotation:
    parts = text.split()
    if len(parts) != 5:
        return RejectedRow(line, path, "", f"{where}: a row is `class cx cy w h`, not {text!r}")
    cls, *rest = parts
    if not cls.isdigit() or int(cls) >= len(names) or not names[int(cls)]:
        reason = f"{where}: unknown class {cls} (classes.txt has {len(names)})"
        return RejectedRow(line, path, "", reason)
    label = names[int(cls)]
    try:
        cx, cy, w, h = (float(v) for v in rest)
    except ValueError:
        return RejectedRow(line, path, label, f"{where}: cx cy w h must be numbers")
    if not all(math.isfinite(v) and 0 <= v <= 1 for v in (cx, cy, w, h)):
        return RejectedRow(line, path, label, f"{where}: cx cy w h must be between 0 and 1")
    if w <= 0 or h <= 0:
        return RejectedRow(line, path, label, f"{where}: the box has no area")
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if min(x0, y0) < -WHOLE or max(x1, y1) > 1 + WHOLE:
        return RejectedRow(line, path, label, f"{where}: the box lies outside its image")
    if size is None:
        reason = f"{where}: unknown path (not an image of the library)"
        return RejectedRow(line, path, label, reason)
    if all(abs(a - b) <= WHOLE for a, b in zip((cx, cy, w, h), (0.5, 0.5, 1, 1), strict=True)):
        return Row(line, path, label)
    width, height = size
    region = (
        max(0.0, x0) * width,
        max(0.0, y0) * height,
        min(1.0, x1) * width,
        min(1.0, y1) * height,
    )
    return BoxAnnotation(line, path, label, region, size, where)
