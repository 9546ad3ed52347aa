"""Human labels as COCO and YOLO files, and COCO files read back as label rows.

The catalog keeps one label per image (no boxes yet), so an exported label is an
annotation whose box is the whole image:

- COCO (one JSON file): ``images`` (id = catalog id, ``file_name`` relative to the
  file's folder, width, height), ``categories`` (the labels, sorted, ids from 1),
  ``annotations`` (one per labelled image, ``bbox`` ``[0, 0, width, height]``).
- YOLO (a folder): ``classes.txt`` (one label a line, the line number is the class),
  ``images.txt`` (the images' absolute paths), ``labels/<image path under the common
  folder>.txt`` (``class 0.5 0.5 1 1``: the whole image), and ``data.yaml`` naming them.

``read_coco`` turns a COCO file into the same rows a CSV gives (path, label), checked
one annotation at a time (unknown image ids, missing categories, duplicate ids, a
box of a region, which the catalog cannot keep yet): every problem names the
annotation, and the import takes the whole file or (``--strict``) nothing.
``is_coco`` tells a COCO file from a CSV one by its content.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from lookalike.classifier.labels import (
    BadLabelFile,
    ImportReport,
    RejectedRow,
    Row,
    apply_rows,
    read_csv,
    write_csv,
)
from lookalike.indexer.errors import BadQuery
from lookalike.indexer.store.catalog import LabelledImage
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


def coco_document(images: list[LabelledImage], base: Path | None) -> dict[str, Any]:
    """The COCO document of ``images``; file names relative to ``base`` when under it
    (None: absolute)."""
    names = sorted({im.label for im in images})
    category = {name: i for i, name in enumerate(names, start=1)}
    return {
        "info": {"description": "Lookalike human labels (whole-image boxes)", "version": "1"},
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
        "annotations": [
            {
                "id": n,
                "image_id": im.id,
                "category_id": category[im.label],
                "bbox": [0, 0, im.width, im.height],
                "area": im.width * im.height,
                "iscrowd": 0,
            }
            for n, im in enumerate(images, start=1)
        ],
    }


def write_coco(library: Library, file: str | Path) -> int:
    """Write the COCO file (atomically); returns the number of annotations."""
    path = Path(file).absolute()
    doc = coco_document(library.catalog.labelled_images(), path.parent)
    _write_text(path, json.dumps(doc, ensure_ascii=False, indent=1))
    return len(doc["annotations"])


def write_yolo(library: Library, folder: str | Path) -> int:
    """Write the YOLO folder (see the module docstring); returns the number of images."""
    out = Path(folder).absolute()
    images = library.catalog.labelled_images()
    names = sorted({im.label for im in images})
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
        _write_text(target, f"{number[im.label]} 0.5 0.5 1 1\n")
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
        doc = coco_document(library.catalog.labelled_images(), None)
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


def read_coco(path: str | Path) -> list[Row | RejectedRow]:
    """The (path, label) rows of a COCO file; ``line`` is the annotation's number (from 1).

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
    images = {im.get("id"): im for im in doc["images"] if isinstance(im, dict)}
    categories = {c.get("id"): c.get("name") for c in doc["categories"] if isinstance(c, dict)}
    seen: dict[Any, int] = {}
    out: list[Row | RejectedRow] = []
    for n, ann in enumerate(doc["annotations"], start=1):
        row = _row(n, ann, images, categories, seen, base)
        out.append(row)
    return out


def _row(n: int, ann: Any, images: dict, categories: dict, seen: dict, base: str):
    if not isinstance(ann, dict):
        return RejectedRow(n, "", "", f"annotation {n} is not an object")
    image = images.get(ann.get("image_id"))
    name = categories.get(ann.get("category_id"))
    path = ""
    if image is not None and isinstance(image.get("file_name"), str):
        path = os.path.normpath(os.path.join(base, os.path.expanduser(image["file_name"])))
    label = name if isinstance(name, str) else ""
    ann_id = ann.get("id")
    if ann_id in seen:
        return RejectedRow(
            n, path, label, f"annotation id {ann_id} repeats annotation {seen[ann_id]}"
        )
    seen[ann_id] = n
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
    problem = _box_problem(ann.get("bbox"), image)
    if problem:
        return RejectedRow(n, path, label, f"annotation id {ann_id}: {problem}")
    return Row(n, path, label)


def _box_problem(bbox: Any, image: dict) -> str | None:
    """None for no box or a box of the whole image; else why it cannot be taken."""
    if bbox is None:
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return "bbox is not [x, y, width, height]"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
        return "bbox holds a value that is not a number"
    x, y, w, h = bbox
    width, height = image.get("width"), image.get("height")
    if w <= 0 or h <= 0:
        return "bbox has no area"
    if (
        not (isinstance(width, int | float) and isinstance(height, int | float))
        or min(width, height) <= 0
    ):
        return "its image has no width and height"
    if x < 0 or y < 0 or x + w > width * (1 + WHOLE_SLACK) or y + h > height * (1 + WHOLE_SLACK):
        return "bbox lies outside its image"
    if (
        x > width * WHOLE_SLACK
        or y > height * WHOLE_SLACK
        or w < width * (1 - WHOLE_SLACK)
        or h < height * (1 - WHOLE_SLACK)
    ):
        return "a box of a region (the catalog keeps whole-image labels only, no boxes yet)"
    return None


def import_labels(library: Library, path: str | Path, strict: bool = False) -> ImportReport:
    """Import a CSV or a COCO file (told apart by content) as human labels."""
    if is_coco(path):
        return apply_rows(library, path, read_coco(path), strict, "coco")
    return apply_rows(library, path, read_csv(path), strict, "csv")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
