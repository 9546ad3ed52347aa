"""The dev data, the bench cache, a library of the dev data built there once, and
the changes to libraries that benchmarks make.

Every benchmark runs on a fresh clone with nothing prepared by hand: what needs real
embeddings takes them from ``dev_library()``, which indexes the dev data's images/
and distractors/ (2,113 images, the default model) into the bench cache on first use
and brings it up to date after (``lookalike index`` is incremental: a rerun lists the
files and embeds nothing).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from bench_support.cli import cli
from lookalike.indexer.models.efficientnet import cache_dir
from lookalike.indexer.store.library import Library

REPO = Path(__file__).resolve().parents[2]
# Without "..", as the indexer stores paths: the same image paths from every checkout.
DATA = Path(
    os.path.abspath(
        os.environ.get("LOOKALIKE_DEV_DATA", REPO.parent / "shared/data/caltech101-dev")
    )
)


def bench_cache() -> Path:
    """Where benchmarks keep what they build once (``$LOOKALIKE_CACHE/bench``)."""
    return cache_dir() / "bench"


def check_data() -> Path:
    """The dev data folder; the benchmark stops with a clear line when it is missing."""
    if not (DATA / "images").is_dir():
        sys.exit(f"dev data not found at {DATA} (set LOOKALIKE_DEV_DATA)")
    return DATA


def dev_files() -> list[Path]:
    """The dev images, round-robin over the classes (any prefix is balanced)."""
    folders = sorted(p for p in (check_data() / "images").iterdir() if p.is_dir())
    per_class = [sorted(f.glob("*.jpg")) for f in folders]
    out = []
    for i in range(max(len(files) for files in per_class)):
        out.extend(files[i] for files in per_class if i < len(files))
    return out


def dev_library(copy_model: str | None = None) -> Path:
    """A library of the dev images and distractors, indexed into the bench cache once.

    With ``copy_model`` it is another cached library, with copy detection on (that
    model's descriptors kept in it). Benchmarks that write to a library copy it first.
    """
    data = check_data()
    name = "dev-library" if copy_model is None else f"dev-library-{copy_model}"
    root = bench_cache() / name
    if not (root / "catalog.sqlite").exists():
        print(f"indexing the dev data into {root} (once: minutes)", file=sys.stderr, flush=True)
    extra = ["--copy-detection", "--copy-model", copy_model] if copy_model else []
    cli("index", str(data / "images"), str(data / "distractors"), "-q", *extra, library=root)
    return root


def long_tailed_library() -> Path:
    """A library of the long-tailed dev data, indexed into the bench cache once.

    ``images/`` + ``extra/`` (51 classes at their natural sizes, 31 to 435 images) and
    ``distractors/``: 3,819 images without labels (a benchmark takes the class from the
    folder name, see ``class_of``). Benchmarks that write to it copy it first.
    """
    data = check_data()
    root = bench_cache() / "long-tailed-library"
    if not (root / "catalog.sqlite").exists():
        print(f"indexing the long-tailed dev data into {root} (once: minutes)", file=sys.stderr)
    folders = [str(data / name) for name in ("images", "extra", "distractors")]
    cli("index", *folders, "-q", library=root)
    return root


def class_of(path: str | Path) -> str:
    """The class of a dev image: its folder's name (``distractors`` for the clutter)."""
    return Path(path).parent.name


def library_vectors(root: Path | None = None) -> tuple[list[str], np.ndarray]:
    """(paths, vectors) of every image of a library (default: ``dev_library()``)."""
    with Library.open(root or dev_library()) as library:
        ids, vectors = library.catalog.vectors()
        paths = library.catalog.paths(ids.tolist())
    return [paths[int(i)] for i in ids], vectors


def remove_images(root: Path, ids: list[int]) -> None:
    """Take images out of a library (no CLI verb removes images in place)."""
    with Library.open(root, readonly=False) as library:
        with library.locked(), library.catalog.transaction() as conn:
            library.catalog.remove_images(conn, ids)
        library.sync_index()
