"""Human labels and boxes as COCO and YOLO files, and COCO files read back.

An image's label is an annotation whose box is the whole image; each human box (not
suggested, not stale: lookalike.classifier.boxes) is an annotation of its region:

- COCO (one JSON file): ``images`` (id = catalog id, ``file_name`` relative to the
  file's folder, width, height: the images with a label or a box), ``categories`` (the
  labels of both, sorted, ids from 1), ``annotations`` (per image, by path: its label,
  ``bbox`` ``[0, 0, width, height]``, ``"kind": "image"``; then its boxes, ``bbox``
  ``[x, y, width, height]`` in whole pixels, ``"kind": "box"``).
- YOLO (a folder): ``classes.txt`` (one label a line, the line number is the class),
  ``images.txt`` (the images' absolute paths), ``labels/<image path under the common
  folder>.txt`` (``class 0.5 0.5 1 1`` for the image's label, then ``class cx cy w h``
  per box, normalised to the image's size), and ``data.yaml`` naming them.

``read_coco`` turns a COCO file into label rows (path, label) and box rows, checked one
annotation at a time (unknown image ids, missing categories, duplicate ids, boxes
outside their image or of no area): every problem names the annotation, and the import
takes the good ones or (``--strict``) nothing. An annotation without ``kind`` (another
tool's file) is an image label when its box is the whole image, else a box.
``is_coco`` tells a COCO file from a CSV one by its content.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from lookalike.classifier import boxes
from lookalike.classifier.labels import (
    BadLabelFile,
    ImportReport,
    RejectedRow,
    Row,
    apply_rows,
    plan_import,
    read_csv,
    write_csv,
    write_labels,
)
from lookalike.classifier.yolo import is_yolo, read_yolo
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.models.protocol import Embedder
from lookalike.indexer.store import boxes as box_store
from lookalike.indexer.store.boxes import ExportBox
from lookalike.indexer.store.library import Library

FORMATS = ("csv", "coco", "yolo")
# A box within this fraction of the image's size of the whole image counts as the whole.
WHOLE_SLACK = 0.01


def is_coco(path: str | Path) -> bool:
    """True when the file holds a JSON object (COCO) rather than CSV text."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise BadLabelFile(path, e.strerror or str(e)) from e
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"{")


def _file_name(path: str, base: Path | None) -> str:
    if base is None:
        return path
    rel = os.path.relpath(path, base)
    return path if rel.startswith(os.pardir + os.sep) else rel


class Annotated(NamedTuple):
    """An exported image: its label (or None) and its boxes, by box id."""

    id: int
    path: str
    width: int
    height: int
    label: str | None
    boxes: list[ExportBox]


def annotated_images(library: Library) -> list[Annotated]:
    """The images with a human label or a current human box, by path."""
    out: dict[int, Annotated] = {}
    for im in library.catalog.labelled_images():
        out[im.id] = Annotated(im.id, im.path, im.width, im.height, im.label, [])
    for b in box_store.export_boxes(library.catalog):
        if b.image_id not in out:
            out[b.image_id] = Annotated(b.image_id, b.path, b.width, b.height, None, [])
        out[b.image_id].boxes.append(b)
    return sorted(out.values(), key=lambda im: (im.path, im.id))


def _names(images: list[Annotated]) -> list[str]:
    found = {im.label for im in images if im.label is not None}
    return sorted(found | {b.label for im in images for b in im.boxes})


def coco_document(images: list[Annotated], base: Path | None) -> dict[str, Any]:
    """The COCO document of ``images``; file names relative to ``base`` when under it
    (None: absolute)."""
    category = {name: i for i, name in enumerate(_names(images), start=1)}
    annotations: list[dict[str, Any]] = []
    for im in images:
        regions = [(im.label, (0, 0, im.width, im.height), "image")] if im.label else []
        regions += [(b.label, b.box, "box") for b in im.boxes]
        for label, (x0, y0, x1, y1), kind in regions:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": im.id,
                    "category_id": category[label],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "kind": kind,
                }
            )
    return {
        "info": {"description": "Lookalike human labels and boxes", "version": "2"},
        "images": [
            {
                "id": im.id,
                "file_name": _file_name(im.path, base),
                "width": im.width,
                "height": im.height,
            }
            for im in images
        ],
        "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in category.items()],
        "annotations": annotations,
    }


def write_coco(library: Library, file: str | Path) -> int:
    """Write the COCO file (atomically); returns the number of annotations."""
    path = Path(file).absolute()
    doc = coco_document(annotated_images(library), path.parent)
    _write_text(path, json.dumps(doc, ensure_ascii=False, indent=1))
    return len(doc["annotations"])


def yolo_lines(im: Annotated, number: dict[str, int]) -> str:
    """An image's YOLO label file: its label as the whole image, then its boxes."""
    lines = [f"{number[im.label]} 0.5 0.5 1 1"] if im.label else []
    for b in im.boxes:
        x0, y0, x1, y1 = b.box
        cx, cy = (x0 + x1) / 2 / im.width, (y0 + y1) / 2 / im.height
        w, h = (x1 - x0) / im.width, (y1 - y0) / im.height
        lines.append(f"{number[b.label]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "".join(f"{line}\n" for line in lines)


def write_yolo(library: Library, folder: str | Path) -> int:
    """Write the YOLO folder (see the module docstring); returns the number of images."""
    out = Path(folder).absolute()
    images = annotated_images(library)
    names = _names(images)
    number = {n: i for i, n in enumerate(names)}
    common = Path(os.path.commonpath([im.path for im in images])) if images else out
    if images and len(images) == 1:
        common = common.parent
    (out / "labels").mkdir(parents=True, exist_ok=True)
    _write_text(out / "classes.txt", "".join(f"{n}\n" for n in names))
    _write_text(out / "images.txt", "".join(f"{im.path}\n" for im in images))
    for im in images:
        target = out / "labels" / Path(os.path.relpath(im.path, common)).with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_text(target, yolo_lines(im, number))
    yaml_names = "".join(f"  {i}: {json.dumps(n, ensure_ascii=False)}\n" for n, i in number.items())
    _write_text(
        out / "data.yaml",
        f"path: {json.dumps(str(out))}\ntrain: images.txt\nval: images.txt\n"
        f"nc: {len(names)}\nnames:\n{yaml_names}",
    )
    return len(images)


def export_download(library: Library, fmt: str) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of an export as one download (the web app's):
    CSV, COCO JSON with absolute file names, or the YOLO folder as a zip."""
    if fmt == "csv":
        buf = io.StringIO()
        write_csv(library.catalog.label_rows(), buf)
        return buf.getvalue().encode(), "text/csv; charset=utf-8", "labels.csv"
    if fmt == "coco":
        doc = coco_document(annotated_images(library), None)
        data = json.dumps(doc, ensure_ascii=False, indent=1).encode()
        return data, "application/json", "labels-coco.json"
    if fmt != "yolo":
        raise BadQuery(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory() as tmp:
        write_yolo(library, tmp)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    z.write(path, Path("labels-yolo") / path.relative_to(tmp))
    return out.getvalue(), "application/zip", "labels-yolo.zip"


def read_coco(path: str | Path) -> list[Row | RejectedRow | boxes.BoxAnnotation]:
    """The label rows and box rows of a COCO file; ``line`` is the annotation's number
    (from 1).

    Raises:
        BadLabelFile: not JSON, or not a COCO document (no images/annotations lists).
    """
    try:
        doc = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except OSError as e:
        raise BadLabelFile(path, e.strerror or str(e)) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise BadLabelFile(path, f"not a JSON document ({e})") from e
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise BadLabelFile(path, "not a COCO file: it needs images, annotations, categories")
    base = os.path.dirname(os.path.abspath(path))
    images = {_key(im.get("id")): im for im in doc["images"] if isinstance(im, dict)}
    categories = {
        _key(c.get("id")): c.get("name") for c in doc["categories"] if isinstance(c, dict)
    }
    seen: dict[Any, int] = {}
    return [
        _row(n, ann, images, categories, seen, base)
        for n, ann in enumerate(doc["annotations"], start=1)
    ]


def _key(value: Any) -> Any:
    """An id as a dict key: JSON's 1 and 1.0 and true are not the same id here."""
    return (type(value).__name__, value) if isinstance(value, bool) else value


def _row(n: int, ann: Any, images: dict, categories: dict, seen: dict, base: str):
    if not isinstance(ann, dict):
        return RejectedRow(n, "", "", f"annotation {n} is not an object")
    image = images.get(_key(ann.get("image_id")))
    name = categories.get(_key(ann.get("category_id")))
    path = ""
    if image is not None and isinstance(image.get("file_name"), str):
        path = os.path.normpath(os.path.join(base, os.path.expanduser(image["file_name"])))
    label = name if isinstance(name, str) else ""
    ann_id = ann.get("id")
    if _key(ann_id) in seen:
        return RejectedRow(
            n, path, label, f"annotation id {ann_id} repeats annotation {seen[_key(ann_id)]}"
        )
    seen[_key(ann_id)] = n
    if image is None:
        return RejectedRow(
            n, "", label, f"annotation id {ann_id}: unknown image id {ann.get('image_id')}"
        )
    if not path:
        return RejectedRow(n, "", label, f"image {ann.get('image_id')} has no file_name")
    if not label:
        return RejectedRow(
            n, path, "", f"annotation id {ann_id}: unknown category id {ann.get('category_id')}"
        )
    try:
        region = _region(ann.get("bbox"), image, ann.get("kind"))
    except ValueError as e:
        return RejectedRow(n, path, label, f"annotation id {ann_id}: {e}")
    if region is None:
        return Row(n, path, label)
    size = (int(image["width"]), int(image["height"]))
    return boxes.BoxAnnotation(n, path, label, region, size, f"annotation id {ann_id}")


def _region(bbox: Any, image: dict, kind: Any) -> tuple[float, float, float, float] | None:
    """None for an image label (no box, or the whole image), else the box (x0, y0, x1,
    y1) in the image's pixels; ValueError saying why it cannot be taken."""
    if kind not in (None, "image", "box"):
        raise ValueError(f'kind is {kind!r}, not "image" or "box"')
    if bbox is None:
        if kind == "box":
            raise ValueError("a box annotation without a bbox")
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise ValueError("bbox is not [x, y, width, height]")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
        raise ValueError("bbox holds a value that is not a number")
    x, y, w, h = (float(v) for v in bbox)
    width, height = image.get("width"), image.get("height")
    if w <= 0 or h <= 0:
        raise ValueError("bbox has no area")
    if (
        isinstance(width, bool)
        or isinstance(height, bool)
        or not (isinstance(width, int | float) and isinstance(height, int | float))
        or min(width, height) <= 0
    ):
        raise ValueError("its image has no width and height")
    if x < 0 or y < 0 or x + w > width * (1 + WHOLE_SLACK) or y + h > height * (1 + WHOLE_SLACK):
        raise ValueError(f"bbox {bbox} lies outside its {width}x{height} image")
    whole = (
        x <= width * WHOLE_SLACK
        and y <= height * WHOLE_SLACK
        and w >= width * (1 - WHOLE_SLACK)
        and h >= height * (1 - WHOLE_SLACK)
    )
    if kind == "image" or (kind is None and whole):
        if not whole:
            raise ValueError('an image label ("kind": "image") whose bbox is not the whole image')
        return None
    return x, y, min(x + w, float(width)), min(y + h, float(height))


def import_labels(
    library: Library,
    path: str | Path,
    strict: bool = False,
    embedder: Callable[[], Embedder] | None = None,
) -> ImportReport:
    """Import a CSV or a COCO file (told apart by content), or a YOLO folder, as human
    labels and boxes.

    ``embedder`` gives the library's model, asked for only when the file has boxes
    (their crops' vectors); without one, box annotations are refused.
    """
    if is_yolo(path):
        rows = read_yolo(path, lambda p: _size(library, p))
        return _apply(library, path, rows, strict, embedder, "yolo")
    if not is_coco(path):
        return apply_rows(library, path, read_csv(path), strict, "csv")
    return _apply(library, path, read_coco(path), strict, embedder, "coco")


def _size(library: Library, path: str) -> tuple[int, int] | None:
    image = library.catalog.image_by_path(path)
    return None if image is None else (image["width"], image["height"])


def _apply(
    library: Library,
    path: str | Path,
    rows: list[Row | RejectedRow | boxes.BoxAnnotation],
    strict: bool,
    embedder: Callable[[], Embedder] | None,
    origin: str,
) -> ImportReport:
    """Check label rows and box rows, then write the good ones in one transaction."""
    box_rows = [r for r in rows if isinstance(r, boxes.BoxAnnotation)]
    label_rows = [r for r in rows if not isinstance(r, boxes.BoxAnnotation)]
    report, items = plan_import(library, path, label_rows)
    plan = boxes.plan_import(library, box_rows, embedder)
    report.taken = sorted(report.taken + plan.taken, key=lambda r: r.line)
    report.rejected = sorted(report.rejected + plan.rejected, key=lambda r: r.line)
    report.boxes_new, report.boxes_unchanged = len(plan.new), plan.unchanged
    if report.taken and not (strict and report.rejected):
        with library.catalog.transaction() as conn:
            if items:
                write_labels(library, conn, items, origin)
            boxes.write_planned(library, conn, plan)
        report.applied = True
    return report


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
