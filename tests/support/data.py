"""Where the repository and the dev data are, and small deterministic slices of it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LOOKALIKE_DEV_DATA", REPO.parent / "shared/data/caltech101-dev"))


def dev_images(classes: int = 4, per_class: int = 5) -> list[Path]:
    """A deterministic slice of the dev data: the first images of the first classes."""
    out = []
    for folder in sorted((DATA / "images").iterdir())[:classes]:
        out.extend(sorted(folder.glob("*.jpg"))[:per_class])
    return out
