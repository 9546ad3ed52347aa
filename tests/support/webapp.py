"""Shared set-up for the web app tests: one small real library per session, copied per test.

The library is a dev slice (4 classes x 5 images, labelled from folder names, plus
one broken file that lands in the errors table) indexed in-process with the real
default model; two labels are removed and predicted tags written so every browse
filter has members.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

from tests.support.data import dev_images

CLASSES, PER_CLASS = 4, 5
CSRF = {"X-Requested-With": "test"}
CROSS_SITE = {"Sec-Fetch-Site": "cross-site"}  # what a browser sends from another site

_built: dict[str, object] = {}


def embedder():
    if "embedder" not in _built:
        from lookalike.indexer.models.registry import load_embedder

        _built["embedder"] = load_embedder()
    return _built["embedder"]


def build_library(base: Path) -> Path:
    """The session's library (built once); returns its directory."""
    if "library" in _built:
        return _built["library"]  # type: ignore[return-value]
    from lookalike.indexer.batch import IndexOptions, index_paths
    from lookalike.indexer.store.library import Library

    photos = base / "photos"
    for path in dev_images(CLASSES, PER_CLASS):
        target = photos / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (photos / "broken.jpg").write_bytes(b"this is not a jpeg")
    root = base / "library"
    model = embedder()
    options = IndexOptions(progress=False, labels_from_folders=True)
    with Library.create(root, model.info) as lib:
        index_paths(lib, model, [str(photos)], options)
        ids = [r[0] for r in lib.catalog.conn.execute("SELECT id FROM images ORDER BY id")]
        with lib.catalog.transaction() as conn:
            # The last two images lose their label: one tagged, one unknown.
            conn.execute("DELETE FROM labels WHERE image_id IN (?, ?)", (ids[-1], ids[-2]))
            label = conn.execute("SELECT label FROM labels LIMIT 1").fetchone()[0]
            now = time.time()
            conn.execute(
                "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, ?, ?, ?, ?)",
                (ids[-1], label, 0.87, "knn", now),
            )
            conn.execute(
                "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, ?, ?, ?, ?)",
                (ids[-2], None, 0.31, "knn", now),
            )
    _built["library"] = root
    _built["photos"] = photos
    return root


def build_cluster_library(base: Path, classes: int = 10, per_class: int = 8) -> Path:
    """A library where clustering has something to find: the first class (Faces) and
    the seventh lose their labels; the other classes keep theirs."""
    from lookalike.indexer.batch import IndexOptions, index_paths
    from lookalike.indexer.store.library import Library

    photos = base / "photos"
    for path in dev_images(classes, per_class):
        target = photos / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    names = sorted(p.name for p in photos.iterdir())
    root = base / "library"
    model = embedder()
    with Library.create(root, model.info) as lib:
        index_paths(
            lib, model, [str(photos)], IndexOptions(progress=False, labels_from_folders=True)
        )
        with lib.catalog.transaction() as conn:
            conn.execute("DELETE FROM labels WHERE label IN (?, ?)", (names[0], names[6]))
    return root


def photos() -> Path:
    return _built["photos"]  # type: ignore[return-value]


def copy_library(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("thumbnails", ".lock"))
    return target


def make_app(library: Path, **config):
    from lookalike.webapp import create_app

    settings = {"EMBEDDER": embedder(), "TESTING": True}
    settings.update(config)
    return create_app(library, test_config=settings)


def upload(data: bytes, name: str = "query.jpg", **fields) -> dict:
    form = {"image": (io.BytesIO(data), name)}
    form.update({k: str(v) for k, v in fields.items()})
    return form


def build_duplicate_library(base: Path) -> tuple[Path, dict[str, Path]]:
    """A library with copies in it: 4 classes x 2 dev images, two copies of the first
    image (smaller and recompressed; cropped) and one of the second (smaller). Returns
    the library and the named files ("a", "a-small", "a-cropped", "b", "b-small")."""
    from PIL import Image

    from lookalike.indexer.batch import IndexOptions, index_paths
    from lookalike.indexer.store.library import Library

    photos = base / "photos"
    photos.mkdir(parents=True)
    sources = dev_images(4, 2)
    for path in sources:
        shutil.copy(path, photos / f"{path.parent.name}-{path.name}")
    a, b = (photos / f"{s.parent.name}-{s.name}" for s in (sources[0], sources[2]))
    named = {"a": a, "b": b}
    for name, src, crop, scale in (
        ("a-small", a, 0.0, 0.7),
        ("a-cropped", a, 0.08, 0.9),
        ("b-small", b, 0.0, 0.8),
    ):
        image = Image.open(src).convert("RGB")
        w, h = image.size
        image = image.crop((int(crop * w), 0, w, int(h - crop * h)))
        image = image.resize((int(image.width * scale), int(image.height * scale)))
        named[name] = photos / f"copy-{name}.jpg"
        image.save(named[name], "JPEG", quality=50)
    root = base / "library"
    model = embedder()
    with Library.create(root, model.info) as lib:
        index_paths(lib, model, [str(photos)], IndexOptions(progress=False))
    return root, named
